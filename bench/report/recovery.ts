// The page's sections on recovery: wallet rebuilds after a Redis wipe, replay against the
// snapshot design, and the drain of a Kafka outage's backlog.
import type { BenchReport, OutageReport, RebuildReport, RebuildRun } from '../types.ts';
import { formatCount, formatErrors, formatRate, formatRatio, isNumber } from './format.ts';
import { left, mdTable, right } from './markdown.ts';

/** Seconds with two decimals. */
const formatSeconds = (value: number | undefined) => (isNumber(value) ? value.toFixed(2) : 'n/a');

const SCENARIOS: Record<RebuildRun['scenario'], string> = {
  'full-history': 'Full history',
  'short-history': 'A fifth of the history',
  'few-users': 'Full history, a tenth of the users',
};

const DESIGNS: Record<RebuildRun['design'], string> = {
  replay: 'Replay from offset 0',
  snapshot: 'Snapshot + tail',
};

/** Every rebuild: what it had to rebuild, what it read, and how long until it served. */
export function rebuildTable(report: RebuildReport): string {
  return mdTable(
    [
      left('History'),
      left('Design'),
      right('Users'),
      right('Records'),
      right('Replayed'),
      right('From snapshot'),
      right('Restore (ms)'),
      right('To SERVING (s)'),
      right('Totals checked'),
    ],
    report.runs.map((run) => [
      SCENARIOS[run.scenario],
      DESIGNS[run.design],
      formatCount(run.users),
      formatCount(run.records),
      formatCount(run.replayedRecords),
      formatCount(run.snapshotUsers),
      formatCount(run.restoreMs),
      formatSeconds(run.seconds),
      formatCount(run.usersChecked),
    ]),
  );
}

/** The rebuild times compared: which design follows history, which follows users. */
export function rebuildRatiosTable(report: RebuildReport): string {
  const { ratios } = report;
  return mdTable(
    [left('Comparison'), right('Ratio')],
    [
      ['Replay / snapshot, full history', formatRatio(ratios.replayOverSnapshot)],
      [
        'Replay / snapshot, a fifth of the history',
        formatRatio(ratios.replayOverSnapshotShortHistory),
      ],
      ['Replay, full / a fifth of the history', formatRatio(ratios.replayFullOverShortHistory)],
      ['Snapshot, full / a fifth of the history', formatRatio(ratios.snapshotFullOverShortHistory)],
      ['Snapshot, all / a tenth of the users', formatRatio(ratios.snapshotManyOverFewUsers)],
    ],
  );
}

/** The outage: its load, its backlog, and how long until the totals agreed again. */
export function outageTable(report: OutageReport): string {
  return mdTable(
    [left('Outage'), right('')],
    [
      ['Offered load (purchases/s)', formatRate(report.rate)],
      ['Users', formatCount(report.users)],
      ['Broker down (s)', report.outageSeconds.toFixed(1)],
      [
        'Outbox min age / recovery interval (ms)',
        `${formatCount(report.outbox.minAgeMs)} / ${formatCount(report.outbox.recoveryIntervalMs)}`,
      ],
      ['Purchases stored while down', formatCount(report.storedDuringOutage)],
      [
        'Backlog when back (purchases in entries)',
        `${formatCount(report.backlog.purchases)} in ${formatCount(report.backlog.entries)}`,
      ],
      ['Backlog drained after (s)', formatSeconds(report.backlogDrainedSeconds)],
      ['Drain rate (purchases/s)', formatRate(report.drainPerSecond)],
      ['Outbox empty after (s)', formatSeconds(report.outboxEmptySeconds)],
      ['Totals = PostgreSQL sums after (s)', formatSeconds(report.consistentSeconds)],
      ['Totals checked', formatCount(report.usersChecked)],
      ['Replies', formatErrors(report.replies)],
    ],
  );
}

/** The page's recovery sections, for the parts the report has. */
export function recoverySections(report: BenchReport): string[] {
  const blocks: string[] = [];
  if (report.rebuild !== undefined) {
    blocks.push(
      '## Rebuild after a Redis wipe',
      'A wallet started on a wiped Redis, timed until gRPC health says `SERVING`; every ' +
        'total is then checked against the sum of the purchases written. Replay reads the ' +
        'topic from offset 0 (`WALLET_SNAPSHOT_INTERVAL_MS=0`); the snapshot design restores ' +
        `the latest snapshot from PostgreSQL and replays the ${formatCount(report.rebuild.tail)} ` +
        'records written after it.',
      rebuildTable(report.rebuild),
      rebuildRatiosTable(report.rebuild),
    );
  }
  if (report.outage !== undefined) {
    blocks.push(
      '## Kafka outage under load',
      'The ingest and the wallet under about the load they sustain while the broker is ' +
        'stopped; purchases are stored in PostgreSQL and kept in the outbox. Timed from the ' +
        'broker serving again.',
      outageTable(report.outage),
    );
  }
  return blocks;
}
