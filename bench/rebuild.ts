// The rebuild bench: how long a wallet whose Redis was wiped takes to serve complete totals
// again, replaying the topic from offset 0 (snapshots off) against restoring the latest
// snapshot from PostgreSQL and replaying the tail after it. Measured at two history
// lengths and two user counts, so the figures show which of the two each design follows.
import { performance } from 'node:perf_hooks';
import { REBUILDING } from '../src/services/walletTotals.ts';
import type { ServiceProcess } from '../test/harness/processes.ts';
import {
  appendHistory,
  emptyHistory,
  ensureHistoryTopic,
  type History,
  type HistoryTopic,
} from './history.ts';
import type { RebuildReport, RebuildRun } from './types.ts';
import { assertTotals, waitCaughtUp, waitServing, wipeKeyPrefix } from './walletChecks.ts';

/** Where and how big. Every name is the run's own; the caller removes them after. */
export interface RebuildBenchOptions {
  readonly brokers: readonly string[];
  readonly partitions: number;
  readonly retentionMs: number;
  /** The wallets' database: where the snapshots go. */
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** Each topic's keys go under `${redisPrefix}<topic>:`. */
  readonly redisPrefix: string;
  /** The topic with many users, and the one with few. */
  readonly topics: { readonly many: string; readonly few: string };
  readonly deadLetterTopic: string;
  readonly idPrefix: string;
  readonly users: { readonly many: number; readonly few: number };
  /** Records of the full history; the short one is a fifth of it. */
  readonly records: number;
  /** Records written after the snapshot, which the snapshot design replays. */
  readonly tail: number;
  /** Longest a wallet may take to catch up or to rebuild. */
  readonly timeoutMs: number;
  /** How often the preparing wallet takes snapshots. */
  readonly snapshotIntervalMs: number;
  /** Starts a wallet with these settings (the caller stops any left running). */
  readonly startWallet: (env: Readonly<Record<string, string>>) => Promise<ServiceProcess>;
  readonly stopWallet: (wallet: ServiceProcess) => Promise<void>;
  /** Prints a line of progress. */
  readonly print: (line: string) => void;
}

/** The default interval of `WALLET_SNAPSHOT_INTERVAL_MS`: the snapshot design as deployed. */
const DEFAULT_SNAPSHOT_INTERVAL_MS = 60_000;

interface Subject {
  readonly topic: HistoryTopic;
  readonly users: number;
  readonly prefix: string;
  readonly groupId: string;
  readonly history: History;
}

/** Runs the rebuild bench; throws if any rebuild serves a total other than its sum. */
export const runRebuildBench = async (options: RebuildBenchOptions): Promise<RebuildReport> => {
  const { print } = options;
  const subjectOf = (topic: string, users: number): Subject => ({
    topic: {
      brokers: options.brokers,
      topic,
      partitions: options.partitions,
      retentionMs: options.retentionMs,
    },
    users,
    prefix: `${options.redisPrefix}${topic}:`,
    groupId: `${topic}_wallet`,
    history: emptyHistory(),
  });
  const envOf = (subject: Subject, snapshotIntervalMs: number) => ({
    DATABASE_URL: options.databaseUrl,
    KAFKA_BROKERS: options.brokers.join(','),
    KAFKA_TOPIC: subject.topic.topic,
    KAFKA_TOPIC_PARTITIONS: String(options.partitions),
    KAFKA_TOPIC_RETENTION_MS: String(options.retentionMs),
    KAFKA_DEAD_LETTER_TOPIC: options.deadLetterTopic,
    REDIS_URL: options.redisUrl,
    REDIS_KEY_PREFIX: subject.prefix,
    WALLET_GROUP_ID: subject.groupId,
    WALLET_SNAPSHOT_INTERVAL_MS: String(snapshotIntervalMs),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    WALLET_HTTP_PORT: '0',
    LOG_LEVEL: 'info',
  });

  const rates: number[] = [];
  let appended = 0;
  /** Appends purchases until the topic holds `total` records. */
  const grow = async (subject: Subject, total: number) => {
    const records = total - subject.history.records;
    if (records <= 0) return;
    appended += 1;
    const perSecond = await appendHistory(
      subject.topic,
      {
        records,
        users: subject.users,
        userPrefix: `${options.idPrefix}-user-`,
        idPrefix: `${options.idPrefix}-${String(appended).padStart(2, '0')}`,
      },
      subject.history,
    );
    rates.push(perSecond);
    print(
      `history  ${subject.topic.topic}: +${records} records (${perSecond}/s), ${subject.history.records} in all`,
    );
  };

  /**
   * A wallet with snapshots on consumes the topic on from where its Redis is, and writes a
   * snapshot round that began once it had committed everything; then it stops.
   */
  const snapshotted = async (subject: Subject) => {
    const wallet = await options.startWallet(envOf(subject, options.snapshotIntervalMs));
    try {
      await waitCaughtUp(options.brokers, subject.topic.topic, subject.groupId, options.timeoutMs);
      const caughtUpAt = Date.now();
      const roundAfter = () =>
        wallet.tail.some((line) => {
          try {
            const entry = JSON.parse(line) as Record<string, unknown>;
            if (entry['msg'] !== 'wallet snapshot written') return false;
            const began = Date.parse(String(entry['time'])) - Number(entry['durationMs']);
            return began >= caughtUpAt;
          } catch {
            return false;
          }
        });
      const deadline = Date.now() + options.timeoutMs;
      while (!roundAfter()) {
        if (!wallet.running || Date.now() > deadline) {
          throw new Error(`no snapshot of ${subject.topic.topic} was written after it caught up`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await options.stopWallet(wallet);
    }
  };

  /** Wipes the subject's Redis keys, starts a wallet and times it until it serves. */
  const rebuild = async (
    subject: Subject,
    design: RebuildRun['design'],
    scenario: RebuildRun['scenario'],
  ): Promise<RebuildRun> => {
    await wipeKeyPrefix(options.redisUrl, subject.prefix);
    const started = performance.now();
    const wallet = await options.startWallet(
      envOf(subject, design === 'replay' ? 0 : DEFAULT_SNAPSHOT_INTERVAL_MS),
    );
    try {
      await waitServing(wallet, options.timeoutMs);
      const seconds = (performance.now() - started) / 1_000;
      const line = wallet.logLine(REBUILDING.none);
      if (line === undefined)
        throw new Error(`${design} wallet of ${subject.topic.topic} did not rebuild`);
      const what = `${design} rebuild of ${subject.topic.topic}`;
      await assertTotals(what, wallet, subject.history.totals);
      const run: RebuildRun = {
        scenario,
        design,
        users: subject.users,
        records: subject.history.records,
        replayedRecords: replayed(line),
        snapshotUsers: Number(line['snapshotUsers'] ?? 0),
        restoreMs: Number(line['restoreMs'] ?? 0),
        seconds: Number(seconds.toFixed(2)),
        usersChecked: subject.history.totals.size,
      };
      print(
        `rebuild  ${`${scenario}, ${design}`.padEnd(28)} ${String(run.seconds).padStart(8)} s  ` +
          `${run.users} users, ${run.records} records, ${run.replayedRecords} replayed, ` +
          `${run.snapshotUsers} from the snapshot; ${run.usersChecked} totals checked`,
      );
      return run;
    } finally {
      await options.stopWallet(wallet);
    }
  };

  const many = subjectOf(options.topics.many, options.users.many);
  const few = subjectOf(options.topics.few, options.users.few);
  const short = Math.round(options.records / 5);
  const runs: RebuildRun[] = [];
  for (const subject of [many, few]) await ensureHistoryTopic(subject.topic);

  // The short history first, then the same topic grown to the full one.
  await grow(many, short - options.tail);
  await snapshotted(many);
  await grow(many, short);
  runs.push(await rebuild(many, 'replay', 'short-history'));
  runs.push(await rebuild(many, 'snapshot', 'short-history'));
  await grow(many, options.records - options.tail);
  await snapshotted(many);
  await grow(many, options.records);
  runs.push(await rebuild(many, 'replay', 'full-history'));
  runs.push(await rebuild(many, 'snapshot', 'full-history'));
  // Few users, the full history.
  await grow(few, options.records - options.tail);
  await snapshotted(few);
  await grow(few, options.records);
  runs.push(await rebuild(few, 'snapshot', 'few-users'));

  return {
    partitions: options.partitions,
    tail: options.tail,
    writtenPerSecond: Math.round(rates.reduce((sum, rate) => sum + rate, 0) / rates.length),
    runs,
    ratios: ratiosOf(runs),
  };
};

/** Records the rebuild read: from where it replayed up to the end it had to reach. */
const replayed = (line: Record<string, unknown>): number => {
  const from = (line['replayFrom'] ?? {}) as Record<string, string>;
  const upTo = (line['replayUpTo'] ?? {}) as Record<string, string>;
  return Object.entries(upTo).reduce(
    (sum, [partition, end]) => sum + Math.max(0, Number(end) - Number(from[partition] ?? 0)),
    0,
  );
};

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? 0 : Number((a / b).toFixed(2));

/** The comparisons the table is for. */
export const ratiosOf = (runs: readonly RebuildRun[]): RebuildReport['ratios'] => {
  const seconds = (scenario: RebuildRun['scenario'], design: RebuildRun['design']) =>
    runs.find((run) => run.scenario === scenario && run.design === design)?.seconds;
  return {
    replayOverSnapshot: ratio(
      seconds('full-history', 'replay'),
      seconds('full-history', 'snapshot'),
    ),
    replayOverSnapshotShortHistory: ratio(
      seconds('short-history', 'replay'),
      seconds('short-history', 'snapshot'),
    ),
    replayFullOverShortHistory: ratio(
      seconds('full-history', 'replay'),
      seconds('short-history', 'replay'),
    ),
    snapshotFullOverShortHistory: ratio(
      seconds('full-history', 'snapshot'),
      seconds('short-history', 'snapshot'),
    ),
    snapshotManyOverFewUsers: ratio(
      seconds('full-history', 'snapshot'),
      seconds('few-users', 'snapshot'),
    ),
  };
};
