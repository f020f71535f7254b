// A Kafka broker of the bench's own (scripts/kafka/start.sh on free ports and a data folder
// of its own), for the section that stops a broker: it never stops one it did not start.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, run } from '../scripts/infra.ts';
import { freePort } from '../test/harness/processes.ts';

/** A broker started by {@link startOwnBroker}. */
export interface OwnBroker {
  readonly brokers: readonly string[];
  /** How long its first start took, until it served. */
  readonly startSeconds: number;
  /** Stops it (SIGTERM, as scripts/kafka/stop.sh does); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on its data; resolves once it serves metadata. */
  start(): Promise<void>;
  /** Stops it and removes its data folder. */
  remove(): Promise<void>;
}

/** Starts a single-node broker on free ports with a new data folder; resolves once it serves. */
export const startOwnBroker = async (): Promise<OwnBroker> => {
  const dataDir = await mkdtemp(join(tmpdir(), 'spendstream-bench-kafka-'));
  const env = {
    KAFKA_PORT: String(await freePort()),
    KAFKA_CONTROLLER_PORT: String(await freePort()),
    KAFKA_DATA_DIR: dataDir,
  };
  const start = () => run('bash', [`${ROOT}scripts/kafka/start.sh`], env);
  const stop = () => run('bash', [`${ROOT}scripts/kafka/stop.sh`], env);
  const startedAt = performance.now();
  try {
    await start();
  } catch (error) {
    await stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    brokers: [`127.0.0.1:${env.KAFKA_PORT}`],
    startSeconds: (performance.now() - startedAt) / 1_000,
    stop,
    start,
    remove: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
};
