// The checker of the fault scenarios, run once the load has stopped and every unacked
// purchase was re-sent: what was acked is stored once, what was stored is published once,
// every total is exact to the cent, every purchase got an answer, the outbox is empty.
import assert from 'node:assert/strict';
import { sql } from 'slonik';
import { z } from 'zod';
import type { TotalDifference } from '../../src/core/reconcile.ts';
import { reconcile } from '../../src/services/reconcile.ts';
import { decimalToCents } from '../../src/core/purchase.ts';
import { eventually } from '../harness/eventually.ts';
import { readTopic } from '../kafkaHelpers.ts';
import type { Cluster } from './cluster.ts';
import type { Load, ResendSummary } from './load.ts';

/** Kinds of violation, each a list of offending ids (or users) with what is wrong. */
export interface Violations {
  /** (a) Acked, but not in PostgreSQL, or stored with another user or amount. */
  readonly ackedNotStored: string[];
  /** (b) In PostgreSQL, not on the topic. */
  readonly storedNotPublished: string[];
  /** (b) On the topic more than once. */
  readonly publishedTwice: string[];
  /** (b) On the topic but not in PostgreSQL, or with another user or amount. */
  readonly publishedNotStored: string[];
  /** (c) Users whose Redis total is below the sum of their purchases in PostgreSQL. */
  readonly totalsShort: string[];
  /** (c) Users whose Redis total is above it. */
  readonly totalsOver: string[];
  /** Acked as new (`duplicate: false`) more than once: stored twice, as the server says. */
  readonly ackedNewTwice: string[];
  /** In PostgreSQL, but the load never sent it. */
  readonly storedNotSent: string[];
  /** (d) Sent, and neither answered nor closed by the time the load stopped. */
  readonly unanswered: string[];
  /** Replies that did not match their frames. */
  readonly protocolErrors: string[];
  /** Still unacked after the resend gave up, or refused for good. */
  readonly neverAcked: string[];
  /** (e) Outbox entries left. */
  readonly outboxLeft: string[];
  /** Records on the dead-letter topic (every record sent is a valid purchase). */
  readonly deadLettered: string[];
}

/** What the checker found. */
export interface InvariantReport {
  readonly sent: number;
  /** Acked on their first send. */
  readonly acked: number;
  /** First send answered with an error or left without a reply by a closed connection. */
  readonly refused: number;
  /** ackedNotStored + storedNotPublished + users in totalsShort. */
  readonly lost: number;
  /** publishedTwice + ackedNewTwice + users in totalsOver. */
  readonly doubleCounted: number;
  readonly violations: Violations;
  /** Counts worth recording: errors by code, closes, rows, records, resend. */
  readonly extra: Record<string, number | string>;
}

const purchaseRow = z.object({ id: z.string(), user_id: z.string(), amount: z.string() });
const countRow = z.object({ n: z.number() });

const describeDifference = (d: TotalDifference) =>
  `${d.userId} (PostgreSQL ${d.postgresCents}, Redis ${d.redisCents} cents)`;

/** Settings of {@link checkInvariants}. */
export interface CheckOptions {
  /** How long the outbox may take to empty and the wallet to catch up. */
  readonly catchUpTimeoutMs: number;
}

/**
 * Checks the invariants. Waits first (up to `catchUpTimeoutMs` each) for the outbox to
 * empty and for every Redis total to equal its PostgreSQL sum, then compares the load's
 * record, PostgreSQL, the whole topic and the totals.
 */
export const checkInvariants = async (
  cluster: Cluster,
  load: Load,
  resend: ResendSummary,
  options: CheckOptions,
): Promise<InvariantReport> => {
  const pool = await cluster.pool();
  const redis = cluster.redis();
  try {
    // (e) The outbox empties: recovery publishes what faults left in it.
    const outboxSize = () =>
      pool.oneFirst(sql.type(countRow)`SELECT count(*)::int AS n FROM outbox`);
    const waiting = {
      timeoutMs: options.catchUpTimeoutMs,
      intervalMs: 500,
      onTimeout: 'resolve',
    } as const;
    let outbox = 0;
    await eventually(
      'the outbox empty',
      async () => {
        outbox = await outboxSize();
        return outbox === 0;
      },
      waiting,
    );

    // (c) The wallet catches up: every total equals its PostgreSQL sum. Once the outbox is
    // empty nothing more is published, so totals that still differ after the wallet
    // committed everything (lag 0, read before comparing) will stay as they are.
    let differences: TotalDifference[] = [];
    await eventually(
      'the totals equal to their PostgreSQL sums',
      async () => {
        const final = outbox === 0 && (await cluster.walletLag()) === 0;
        differences = (await reconcile({ pool, redis })).differences;
        return differences.length === 0 || final;
      },
      waiting,
    );

    const rows = await pool.any(
      sql.type(purchaseRow)`SELECT id, user_id, amount::text AS amount FROM purchases`,
    );
    const stored = new Map(
      rows.map((row) => [row.id, { userId: row.user_id, cents: decimalToCents(row.amount) }]),
    );
    const records = await readTopic(cluster.kafka, cluster.topic);
    const deadLetters = await readTopic(cluster.kafka, cluster.deadLetterTopic);

    const violations: Violations = {
      ackedNotStored: [],
      storedNotPublished: [],
      publishedTwice: [],
      publishedNotStored: [],
      totalsShort: [],
      totalsOver: [],
      ackedNewTwice: [],
      storedNotSent: [],
      unanswered: [],
      protocolErrors: [],
      neverAcked: [...resend.stillUnacked, ...resend.refusedForGood],
      outboxLeft: outbox > 0 ? [`${outbox} entries`] : [],
      deadLettered: deadLetters.map((r) => `${r.partition}@${r.offset} ${JSON.stringify(r.value)}`),
    };

    // (a) Every acked purchase is in PostgreSQL (once: id is its primary key), as sent.
    for (const purchase of load.purchases.values()) {
      if (purchase.newAcks > 1) violations.ackedNewTwice.push(`${purchase.id}×${purchase.newAcks}`);
      if (!purchase.acked) continue;
      const row = stored.get(purchase.id);
      if (row === undefined) violations.ackedNotStored.push(`${purchase.id} (missing)`);
      else if (row.userId !== purchase.userId || row.cents !== purchase.cents) {
        violations.ackedNotStored.push(
          `${purchase.id} (stored ${row.userId} ${row.cents}, sent ${purchase.userId} ${purchase.cents})`,
        );
      }
    }
    for (const id of stored.keys()) {
      if (!load.purchases.has(id)) violations.storedNotSent.push(id);
    }

    // (b) Every stored purchase is on the topic exactly once, and nothing else is.
    const published = new Map<string, number>();
    for (const record of records) {
      const id = String(record.value['id']);
      published.set(id, (published.get(id) ?? 0) + 1);
      const row = stored.get(id);
      if (row === undefined) {
        violations.publishedNotStored.push(`${id} (not in PostgreSQL)`);
      } else if (
        record.value['user_id'] !== row.userId ||
        record.value['amount_cents'] !== row.cents ||
        record.key !== row.userId
      ) {
        violations.publishedNotStored.push(`${id} (record ${JSON.stringify(record.value)})`);
      }
    }
    for (const [id, count] of published) {
      if (count > 1) violations.publishedTwice.push(`${id}×${count}`);
    }
    for (const id of stored.keys()) {
      if (!published.has(id)) violations.storedNotPublished.push(id);
    }

    // (c) Totals, as the last reconcile found them.
    for (const difference of differences) {
      const list =
        difference.redisCents < difference.postgresCents
          ? violations.totalsShort
          : violations.totalsOver;
      list.push(describeDifference(difference));
    }

    // (d) Every purchase sent got an ack, an error or a close.
    const summary = load.summary();
    violations.unanswered.push(...summary.unanswered);
    violations.protocolErrors.push(...summary.protocolErrors);

    const lost =
      violations.ackedNotStored.length +
      violations.storedNotPublished.length +
      violations.totalsShort.length;
    const doubleCounted =
      violations.publishedTwice.length +
      violations.ackedNewTwice.length +
      violations.totalsOver.length;
    const extra: Record<string, number | string> = {
      ackedInTheEnd: [...load.purchases.values()].filter((p) => p.acked).length,
      noReply: summary.noReply,
      frames: summary.frames,
      connects: summary.connects,
      connectFailures: summary.connectFailures,
      storedRows: rows.length,
      topicRecords: records.length,
      resendRounds: resend.rounds,
      resent: resend.resent,
    };
    for (const [code, count] of Object.entries(summary.errorsByCode))
      extra[`error:${code}`] = count;
    for (const [code, count] of Object.entries(summary.closesByCode))
      extra[`close:${code}`] = count;
    return {
      sent: summary.sent,
      acked: summary.acked,
      refused: summary.refused,
      lost,
      doubleCounted,
      violations,
      extra,
    };
  } finally {
    redis.disconnect();
    await pool.end();
  }
};

/** One line per kind of violation found, with its count and first offenders. */
export const describeViolations = (report: InvariantReport): string =>
  Object.entries(report.violations as unknown as Record<string, readonly string[]>)
    .filter(([, list]) => list.length > 0)
    .map(([kind, list]) => `${kind}: ${list.length}, first: ${list.slice(0, 10).join(', ')}`)
    .join('\n');

/** Fails unless every invariant held: lost and double counted first, then the rest. */
export const assertInvariants = (report: InvariantReport): void => {
  const found = describeViolations(report);
  assert.equal(report.lost, 0, `acked purchases lost:\n${found}`);
  assert.equal(report.doubleCounted, 0, `purchases counted twice:\n${found}`);
  assert.equal(found, '', `invariants violated:\n${found}`);
};
