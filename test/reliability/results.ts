// Each reliability scenario records its figures here; docs/reliability.md quotes the last
// full run (`npm run test:reliability`), which leaves them in test-results/reliability/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { reliabilityLevel } from '../helpers.ts';

const DIR = fileURLToPath(new URL('../../test-results/reliability/', import.meta.url));

/** What one scenario measured. Counts are purchases; times are milliseconds. */
export interface ScenarioFigures {
  readonly scenario: string;
  readonly sent?: number;
  readonly acked?: number;
  /** Purchases answered with an error or left without a reply by a closed connection. */
  readonly refused?: number;
  /** Acked purchases missing from PostgreSQL, the topic or the totals: must be 0. */
  readonly lost?: number;
  /** Purchases stored, published or counted more than once: must be 0. */
  readonly doubleCounted?: number;
  /** From the fault's end until the system served again (first ack, or totals caught up). */
  readonly recoveryMs?: number;
  /** Peak resident set of the process under test, MiB. */
  readonly peakRssMiB?: number;
  /** Anything else worth reporting, by name. */
  readonly extra?: Readonly<Record<string, number | string>>;
}

/** Writes a scenario's figures to test-results/reliability/<scenario>.json. */
export const recordFigures = (figures: ScenarioFigures): void => {
  mkdirSync(DIR, { recursive: true });
  const file = `${DIR}${figures.scenario.replace(/[^a-z0-9-]+/gi, '-').toLowerCase()}.json`;
  writeFileSync(
    file,
    `${JSON.stringify({ ...figures, level: reliabilityLevel, at: new Date().toISOString() }, null, 2)}\n`,
  );
};
