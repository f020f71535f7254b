// What the abusive-client scenarios share: an ingest process of each scenario's own (so
// each one's peak RSS is its own) and the check on the well-behaved probe beside them.
import assert from 'node:assert/strict';
import { onTeardown, type TestHooks } from '../../harness/teardown.ts';
import { startIngestChild, type IngestChild, type ProbeReport } from '../hostileServices.ts';

/** INGEST_MAX_FRAME_BYTES of the abused service. */
export const ABUSE_MAX_FRAME_BYTES = 65_536;

/** Starts an ingest process for scenario `t`, stopped (and its stores removed) after it. */
export const startAbusedIngest = async (t: TestHooks): Promise<IngestChild> => {
  const ingest = await startIngestChild({
    INGEST_MAX_FRAME_BYTES: String(ABUSE_MAX_FRAME_BYTES),
  });
  onTeardown(t, () => ingest.close());
  return ingest;
};

/** Fails unless the well-behaved client got acks, and every one in time. */
export const assertProbe = (report: ProbeReport) => {
  assert.deepEqual(report.failures, [], 'the well-behaved client got every ack in time');
  assert.ok(report.acked.length > 0, 'the well-behaved client got acks');
};
