// The ingest harness before `startIngest(t, …)`, kept for test/integration/readiness.test.ts
// and test/browser/statusPage.test.ts, which still import it from here.
import { startIngest, type StartedIngest } from './harness/services.ts';
import { teardownScope } from './harness/teardown.ts';
import type { LogLevel } from '../src/logger.ts';

/** A running test ingest service; `close()` stops it and removes its database and topic. */
export interface IngestHarness extends StartedIngest {
  close(): Promise<void>;
}

/** Starts an ingest service on a new database and topic, with settings replaced. */
export const startIngestHarness = async (
  overrides: Record<string, string>,
  logLevel: LogLevel = 'warn',
): Promise<IngestHarness> => {
  const scope = teardownScope();
  try {
    return { ...(await startIngest(scope, overrides, { logLevel })), close: () => scope.close() };
  } catch (error) {
    await scope.close();
    throw error;
  }
};
