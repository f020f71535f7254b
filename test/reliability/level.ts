// The level a reliability run is at, and the load settings every scenario file starts from:
// `reduced` fits `npm test`, `full` is `npm run test:reliability`.
import { reliabilityLevel } from '../helpers.ts';

export const FULL = reliabilityLevel === 'full';

/** The steady load, its length around each fault, and how long a check may wait. */
export const baseSettings = {
  clients: FULL ? 8 : 4,
  window: 50,
  ratePerClient: 300,
  users: FULL ? 100 : 40,
  /** Load before each fault, and after it healed. */
  beforeMs: FULL ? 15_000 : 2_000,
  afterMs: FULL ? 15_000 : 2_000,
  resendDeadlineMs: FULL ? 180_000 : 90_000,
  catchUpTimeoutMs: FULL ? 180_000 : 90_000,
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
