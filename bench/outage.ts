// The outage bench: the whole system under about the load it sustains while its Kafka
// broker is down for a minute, then how long the backlog the outbox kept takes to reach
// the topic and the wallet's totals once the broker is back.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { openMigratedDatabase } from '../src/adapters/postgres/database.ts';
import type { ServiceProcess } from '../test/harness/processes.ts';
import { eventually } from '../test/harness/eventually.ts';
import { runLoad } from './loadgen.ts';
import { startOwnBroker } from './ownBroker.ts';
import type { OutageReport } from './types.ts';
import { differingTotals } from './walletChecks.ts';

/** Where and how long. Every name is the run's own; the caller removes them after. */
export interface OutageBenchOptions {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly topic: string;
  readonly deadLetterTopic: string;
  readonly partitions: number;
  readonly idPrefix: string;
  readonly users: number;
  /** Seconds the broker stays down. */
  readonly outageSeconds: number;
  /** Seconds of load to find the rate the system sustains, and of load before the outage. */
  readonly calibrateSeconds: number;
  readonly beforeSeconds: number;
  /** Ingest settings replaced (the outbox's timings for a short run). */
  readonly ingestEnv: Readonly<Record<string, string>>;
  /** Longest the backlog may take to drain and the totals to agree. */
  readonly timeoutMs: number;
  readonly startIngest: (env: Readonly<Record<string, string>>) => Promise<ServiceProcess>;
  readonly startWallet: (env: Readonly<Record<string, string>>) => Promise<ServiceProcess>;
  readonly stopService: (service: ServiceProcess) => Promise<void>;
  readonly print: (line: string) => void;
}

/** The defaults of the outbox's timings in src/config.ts, when `ingestEnv` leaves them. */
const OUTBOX_DEFAULTS = { OUTBOX_MIN_AGE_MS: '60000', OUTBOX_RECOVERY_INTERVAL_MS: '15000' };

const countRow = z.object({ entries: z.number(), purchases: z.number(), last: z.string() });
const nowRow = z.object({ now: z.string() });
const sumRow = z.object({ user_id: z.string(), cents: z.string() });

const backlogOf = (pool: DatabasePool) =>
  pool.one(sql.type(countRow)`
    SELECT count(*)::int AS entries,
           coalesce(sum(cardinality(purchase_ids)), 0)::int AS purchases,
           coalesce(max(batch_id), 0)::text AS last
    FROM outbox`);

const databaseNow = (pool: DatabasePool) =>
  pool.oneFirst(sql.type(nowRow)`SELECT now()::text AS now`);

/** Each user's PostgreSQL sum, in cents. */
const sumsOf = async (pool: DatabasePool): Promise<Map<string, number>> => {
  const rows = await pool.any(sql.type(sumRow)`
    SELECT user_id, (sum(amount) * 100)::bigint::text AS cents FROM purchases GROUP BY user_id`);
  return new Map(rows.map((row) => [row.user_id, Number(row.cents)]));
};

/** Runs the outage bench on a broker of its own; throws if the totals never agree. */
export const runOutageBench = async (options: OutageBenchOptions): Promise<OutageReport> => {
  const { print } = options;
  const broker = await startOwnBroker();
  const services: ServiceProcess[] = [];
  const { pool } = await openMigratedDatabase({ url: options.databaseUrl, poolSize: 2 });
  try {
    const env = {
      DATABASE_URL: options.databaseUrl,
      KAFKA_BROKERS: broker.brokers.join(','),
      KAFKA_TOPIC: options.topic,
      KAFKA_TOPIC_PARTITIONS: String(options.partitions),
      KAFKA_DEAD_LETTER_TOPIC: options.deadLetterTopic,
      REDIS_URL: options.redisUrl,
      REDIS_KEY_PREFIX: options.redisPrefix,
      WALLET_GROUP_ID: `${options.topic}_wallet`,
      WS_HOST: '127.0.0.1',
      WS_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      WALLET_HTTP_PORT: '0',
      LOG_LEVEL: 'info',
    };
    const ingestEnv = { ...env, ...OUTBOX_DEFAULTS, ...options.ingestEnv };
    const ingest = await options.startIngest(ingestEnv);
    services.push(ingest);
    const wallet = await options.startWallet(env);
    services.push(wallet);
    const url = ingest.logLine('ingest service listening')?.['url'];
    if (typeof url !== 'string') throw new Error('the ingest logged no URL');
    const load = {
      url,
      users: options.users,
      warmupSeconds: 0,
      userPrefix: `${options.idPrefix}-user-`,
      frameSize: 100,
    };

    const calibration = await runLoad({
      ...load,
      warmupSeconds: Math.min(3, options.calibrateSeconds),
      connections: 4,
      window: 1_000,
      seconds: options.calibrateSeconds,
      idPrefix: `${options.idPrefix}-calibrate`,
    });
    const rate = Math.max(100, Math.round(calibration.throughput * 0.9));
    print(
      `outage   load at ${rate} purchases/s (90% of the ${calibration.throughput}/s sustained)`,
    );

    // Sent at that rate through the outage and the drain; ended once the backlog is gone.
    const ended = new AbortController();
    const loading = runLoad({
      ...load,
      // Room in the windows for every purchase waiting out the outage (its deadline).
      connections: 8,
      window: 5_000,
      rate,
      seconds: options.beforeSeconds + options.outageSeconds + options.timeoutMs / 1_000,
      idPrefix: `${options.idPrefix}-outage`,
      stop: ended.signal,
      drainTimeoutMs: 60_000,
    });
    try {
      await sleep(options.beforeSeconds * 1_000);
      await broker.stop();
      const stoppedAt = performance.now();
      const downAt = await databaseNow(pool);
      // Down for about the outage in all: a start takes about as long as the first did.
      await sleep(Math.max(0, options.outageSeconds - broker.startSeconds) * 1_000);
      await broker.start();
      const backAt = performance.now();
      const upAt = await databaseNow(pool);
      const backlog = await backlogOf(pool);
      const storedDuringOutage = await pool.oneFirst(
        sql.type(z.object({ count: z.number() }))`
          SELECT count(*)::int AS count FROM purchases
          WHERE created_at >= ${downAt}::timestamptz AND created_at < ${upAt}::timestamptz`,
      );
      const downSeconds = (backAt - stoppedAt) / 1_000;
      print(
        `outage   broker down ${downSeconds.toFixed(1)} s: ${storedDuringOutage} purchases stored, ` +
          `${backlog.purchases} in ${backlog.entries} outbox entries when it was back`,
      );
      // The entries saved up to the broker's return, drained while the load goes on.
      await eventually(
        'the outage backlog draining',
        async () =>
          (await pool.oneFirst(sql.type(z.object({ left: z.number() }))`
            SELECT count(*)::int AS left FROM outbox WHERE batch_id <= ${backlog.last}::bigint`)) ===
          0,
        { timeoutMs: options.timeoutMs, intervalMs: 100 },
      );
      const backlogDrainedSeconds = (performance.now() - backAt) / 1_000;
      // The load stops sending; its last replies come in while the rest is checked.
      ended.abort();
      // Then nothing left in the outbox, and every total equal to its PostgreSQL sum.
      let usersChecked = 0;
      let outboxEmptySeconds: number | undefined;
      await eventually(
        'the totals equal to the PostgreSQL sums',
        async () => {
          if ((await backlogOf(pool)).entries > 0) return false;
          outboxEmptySeconds ??= (performance.now() - backAt) / 1_000;
          const sums = await sumsOf(pool);
          usersChecked = sums.size;
          return (await differingTotals(wallet, sums)).differing === 0;
        },
        { timeoutMs: options.timeoutMs, intervalMs: 500 },
      );
      const consistentSeconds = (performance.now() - backAt) / 1_000;
      const result = await loading;
      const report: OutageReport = {
        rate,
        users: options.users,
        outageSeconds: Number(downSeconds.toFixed(1)),
        outbox: {
          minAgeMs: Number(ingestEnv.OUTBOX_MIN_AGE_MS),
          recoveryIntervalMs: Number(ingestEnv.OUTBOX_RECOVERY_INTERVAL_MS),
        },
        storedDuringOutage,
        backlog: { entries: backlog.entries, purchases: backlog.purchases },
        backlogDrainedSeconds: Number(backlogDrainedSeconds.toFixed(2)),
        drainPerSecond: Math.round(backlog.purchases / backlogDrainedSeconds),
        outboxEmptySeconds: Number((outboxEmptySeconds ?? consistentSeconds).toFixed(2)),
        consistentSeconds: Number(consistentSeconds.toFixed(2)),
        replies: { ack: result.acked, ...result.errors },
        usersChecked,
      };
      print(
        `outage   backlog drained ${report.backlogDrainedSeconds} s after the broker was back ` +
          `(${report.drainPerSecond} purchases/s); outbox empty after ${report.outboxEmptySeconds} s, ` +
          `${usersChecked} totals equal to PostgreSQL after ${report.consistentSeconds} s`,
      );
      return report;
    } finally {
      ended.abort();
      await loading.catch(() => undefined);
    }
  } finally {
    for (const service of services.reverse()) await options.stopService(service);
    await pool.end();
    await broker.remove();
  }
};
