// Fault scenarios under steady load, one at a time, each on a deployment of its own: the
// services are killed, terminated and restarted, Kafka is stopped, PostgreSQL connections
// are cut, Redis loses its data. After each fault heals, the load stops, every unacked
// purchase is re-sent with its id, and the invariants are checked: nothing acked is lost,
// nothing is counted twice, every total is exact.
//
// recoveryMs: for faults of the ingest path (ingest killed or terminated, Kafka, PostgreSQL)
// from the heal (restart spawned, broker serving again, last connection cut) to the first
// new ack; for wallet faults from the heal (wallet restarted or started) until the wallet
// group has committed everything published before it. Service logs of each scenario go to
// <tmpdir>/spendstream-reliability/<scenario>_<id>/.
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import { sql } from 'slonik';
import { z } from 'zod';
import { ROOT, run } from '../../scripts/infra.ts';
import { eventually } from '../harness/eventually.ts';
import type { ServiceProcess } from '../harness/processes.ts';
import { createCluster, type Cluster, type Offsets } from './cluster.ts';
import { assertInvariants, checkInvariants } from './invariants.ts';
import { baseSettings, FULL, sleep } from './level.ts';
import { reportScenario } from './report.ts';
import { startLoad, type Load } from './load.ts';

/** Durations and sizes of the level: `reduced` fits `npm test`, `full` is the real run. */
const settings = {
  ...baseSettings,
  /** How long an outage lasts (Kafka down, connections cut, wallet paused). */
  faultMs: FULL ? 8_000 : 2_500,
  /** How long a SIGSTOPped ingest stands still: past the 5 s takeover age. */
  stallMs: FULL ? 15_000 : 9_000,
};

const idRow = z.object({ id: z.string() });

type Figures = Record<string, number | string>;

/** What a fault reports back: its recovery time and figures of its own. */
interface FaultOutcome {
  /** A promise when measured while the load goes on (the wallet catching up). */
  readonly recoveryMs: number | Promise<number | undefined>;
  readonly extra?: Figures | Promise<Figures>;
  /** Checks of the scenario's own, run after the invariants. */
  readonly check?: () => void;
}

interface Scenario {
  readonly cluster: Cluster;
  readonly load: Load;
  /** Ingest instances started beside the cluster's own, each taking a share of the load. */
  readonly extraIngests: readonly ServiceProcess[];
}

const show = (offsets: Offsets) =>
  [...offsets]
    .sort(([a], [b]) => a - b)
    .map(([partition, offset]) => `${partition}:${offset}`)
    .join(' ');

/** Sum over partitions of `high - committed`: records published and not yet committed. */
const lag = (high: Offsets, committed: Offsets): number =>
  [...high].reduce((sum, [p, offset]) => sum + Number(offset - (committed.get(p) ?? 0n)), 0);

/**
 * Milliseconds from `since` until the wallet group has committed every partition up to
 * the high watermarks of now (when the fault healed): the totals have caught up with
 * everything published before. Undefined if not within the timeout (the invariant check
 * then reports the totals that are off). Measured while the load goes on.
 */
const catchUp = async (cluster: Cluster, since: number): Promise<number | undefined> => {
  const targets = await cluster.highWatermarks();
  const caughtUp = await eventually(
    'the wallet group committed up to the high watermarks',
    async () => {
      const committed = await cluster.committedOffsets().catch(() => undefined);
      return committed !== undefined && lag(targets, committed) <= 0;
    },
    { timeoutMs: settings.catchUpTimeoutMs, intervalMs: 200, onTimeout: 'resolve' },
  );
  return caughtUp ? Date.now() - since : undefined;
};

/** Keeps a promise that is awaited later from counting as an unhandled rejection. */
const later = <T>(promise: Promise<T>): Promise<T> => {
  promise.catch(() => undefined);
  return promise;
};

/**
 * Runs one scenario: a deployment with the ingest and `wallets` wallet instances, steady
 * load, the fault, more load, then stop, resend, check, record, assert.
 */
const scenario = async (
  t: TestContext,
  name: string,
  wallets: number,
  fault: (s: Scenario) => Promise<FaultOutcome>,
  { ingests = 1 }: { readonly ingests?: number } = {},
): Promise<void> => {
  const cluster = await createCluster({ name });
  let load: Load | undefined;
  try {
    // The first wallet marks the empty Redis initialised; later ones must find it so.
    await Promise.all([cluster.startIngest(), cluster.startWallet()]);
    for (let i = 1; i < wallets; i += 1) await cluster.startWallet();
    const others: { readonly process: ServiceProcess; readonly url: string }[] = [];
    for (let i = 1; i < ingests; i += 1) others.push(await cluster.startExtraIngest());
    load = startLoad({
      url: cluster.ingestUrl,
      urls: [cluster.ingestUrl, ...others.map((instance) => instance.url)],
      clients: settings.clients,
      window: settings.window,
      ratePerClient: settings.ratePerClient,
      users: settings.users,
    });
    await load.waitForAcks(100, 60_000);
    await sleep(settings.beforeMs);
    const outcome = await fault({
      cluster,
      load,
      extraIngests: others.map((instance) => instance.process),
    });
    await sleep(settings.afterMs);
    await load.stop();
    const recoveryMs = await outcome.recoveryMs;
    const resend = await load.resendUnacked(settings.resendDeadlineMs);
    const report = await checkInvariants(cluster, load, resend, settings);
    reportScenario(t, name, report, recoveryMs, { ...report.extra, ...(await outcome.extra) });
    outcome.check?.();
  } catch (error) {
    t.diagnostic(`service logs of ${cluster.name}: ${cluster.logDir}`);
    // Cleaning up must not hide why the scenario failed.
    await load?.stop().catch(() => undefined);
    await cluster.close().catch((cleanup: unknown) => t.diagnostic(`cleanup: ${String(cleanup)}`));
    throw error;
  }
  await load.stop();
  await cluster.close();
};

// The broker is shared: whatever a scenario did, it is left running.
after(() => run('bash', [`${ROOT}scripts/kafka/start.sh`]));

const TIMEOUT = { timeout: FULL ? 900_000 : 240_000 };

test('ingest SIGKILLed under load and restarted', TIMEOUT, (t) =>
  scenario(t, 'ingest-sigkill', 1, async ({ cluster, load }) => {
    const exit = await cluster.ingest?.kill('SIGKILL');
    assert.equal(exit?.signal, 'SIGKILL');
    await sleep(500);
    const healedAt = Date.now();
    load.markHealed(healedAt);
    await cluster.startIngest();
    return { recoveryMs: await load.firstAckSinceHealed(60_000) };
  }),
);

test('two ingests, one SIGSTOPped under load past the takeover age, then resumed', TIMEOUT, (t) =>
  scenario(
    t,
    'ingest-sigstop-takeover',
    1,
    async ({ cluster, extraIngests }) => {
      const frozen = cluster.ingest;
      const taker = extraIngests[0];
      assert.ok(frozen !== undefined && taker !== undefined);
      // Frozen while it holds a batch it committed and has not cleared from the outbox,
      // which the other must then take over (after OUTBOX_MIN_AGE_MS, 5 s, of silence).
      const pool = await cluster.pool();
      const holds = async () =>
        (await pool.oneFirst(
          sql.type(z.object({ n: z.number() }))`
            SELECT count(*)::int AS n FROM outbox WHERE owner = ${cluster.ingestInstanceId}`,
        )) > 0;
      let frozenAt: number | undefined;
      try {
        for (let tries = 0; ; tries += 1) {
          frozenAt = Date.now();
          frozen.signal('SIGSTOP');
          if ((await holds()) || tries >= 200) break;
          frozen.signal('SIGCONT');
          await sleep(20);
        }
      } finally {
        await pool.end();
      }
      const takeover = 'taking over the outbox entries of a silent ingest instance';
      const tookOver = await eventually(
        "the other instance took over the frozen one's outbox entries",
        () => Promise.resolve(taker.logLine(takeover) !== undefined),
        { timeoutMs: settings.stallMs, intervalMs: 100, onTimeout: 'resolve' },
      );
      const takeoverMs = Date.now() - (frozenAt ?? Date.now());
      await sleep(Math.max(0, settings.stallMs - takeoverMs));
      frozen.signal('SIGCONT');
      return {
        // From the freeze to the takeover (fencing included).
        recoveryMs: takeoverMs,
        extra: { stallMs: settings.stallMs },
        check: () => {
          assert.ok(tookOver, 'the frozen instance was taken over (fenced) while it stood still');
        },
      };
    },
    { ingests: 2 },
  ),
);

test('a valid frame too large for one Kafka batch, amid load', TIMEOUT, (t) =>
  scenario(t, 'poison-frame', 1, async ({ load }) => {
    // 1,000 purchases for a user id of 128 four-byte characters: a 541 KB frame, valid,
    // whose records are past the broker's 1 MiB per batch.
    const userId = '\u{1d11e}'.repeat(128);
    const sentAt = Date.now();
    await load.sendFrame(userId, 1_000);
    const frame = () => [...load.purchases.values()].filter((p) => p.userId === userId);
    const ackedAll = await eventually(
      'every purchase of the large frame was acked',
      () => Promise.resolve(frame().every((p) => p.acked)),
      { timeoutMs: 60_000, intervalMs: 100, onTimeout: 'resolve' },
    );
    return {
      recoveryMs: Date.now() - sentAt,
      check: () => assert.ok(ackedAll, 'the large frame was acked on its first send'),
    };
  }),
);

test('wallet SIGKILLed while applying a backlog, then restarted', TIMEOUT, (t) =>
  scenario(t, 'wallet-sigkill-mid-batch', 1, async ({ cluster }) => {
    const [wallet] = cluster.wallets;
    assert.ok(wallet);
    // Paused, the wallet falls behind; resumed, it works through the backlog and is
    // killed as soon as Redis shows it applying, most likely before that batch's commit.
    wallet.signal('SIGSTOP');
    await sleep(settings.faultMs);
    const high = await cluster.highWatermarks();
    const before = show(await cluster.appliedOffsets());
    wallet.signal('SIGCONT');
    // Polling without pauses: each look at Redis takes a few milliseconds.
    await eventually(
      'the wallet applying again',
      async () => show(await cluster.appliedOffsets()) !== before,
      { timeoutMs: 10_000, intervalMs: 0, onTimeout: 'resolve' },
    );
    await wallet.kill('SIGKILL');
    const committed = await cluster.committedOffsets();
    const applied = await cluster.appliedOffsets();
    const backlog = lag(high, committed);
    // Applied to Redis but not committed: redelivered after the restart, and skipped.
    const appliedUncommitted = [...applied].reduce(
      (sum, [p, offset]) => sum + Math.max(0, Number(offset + 1n - (committed.get(p) ?? 0n))),
      0,
    );
    assert.ok(backlog > 0, `the wallet had caught up before it was killed (${show(committed)})`);
    const healedAt = Date.now();
    const restarted = await cluster.startWallet();
    return {
      recoveryMs: later(catchUp(cluster, healedAt)),
      extra: { backlogAtKill: backlog, appliedUncommittedAtKill: appliedUncommitted },
      check: () => assert.ok(restarted.running, 'the restarted wallet still runs'),
    };
  }),
);

test('wallet SIGKILLed while Redis refuses its writes, then restarted', TIMEOUT, (t) =>
  scenario(t, 'wallet-sigkill-redis-refusing', 1, async ({ cluster }) => {
    const [wallet] = cluster.wallets;
    assert.ok(wallet);
    // The wallet keeps receiving records while its Redis step fails (and is retried):
    // none of them may be committed, or the restarted wallet would skip them unapplied.
    const refusedAt = Date.now();
    await cluster.refuseRedisWrites();
    try {
      await sleep(settings.faultMs);
      await wallet.kill('SIGKILL');
    } finally {
      await cluster.allowRedisWrites();
    }
    const healedAt = Date.now();
    await cluster.startWallet();
    return {
      recoveryMs: later(catchUp(cluster, healedAt)),
      extra: { redisRefusingMs: healedAt - refusedAt },
    };
  }),
);

test('two wallets, one SIGKILLed (rebalance), then a third started', TIMEOUT, (t) =>
  scenario(t, 'wallet-rebalance', 2, async ({ cluster }) => {
    const [first, second] = cluster.wallets;
    assert.ok(first && second);
    const killedAt = Date.now();
    await first.kill('SIGKILL');
    await sleep(1_000);
    const healedAt = Date.now();
    const third = await cluster.startWallet();
    const recoveryMs = later(catchUp(cluster, healedAt));
    return {
      recoveryMs,
      extra: later(
        recoveryMs.then((ms) => ({
          killToCaughtUpMs: ms === undefined ? 'n/a' : ms + healedAt - killedAt,
        })),
      ),
      check: () => {
        assert.ok(second.running, 'the surviving wallet still runs');
        assert.ok(third.running, 'the third wallet still runs');
      },
    };
  }),
);

test('the Kafka broker stopped under load and restarted', TIMEOUT, (t) =>
  scenario(t, 'kafka-restart', 1, async ({ cluster, load }) => {
    const stoppedAt = Date.now();
    try {
      await cluster.stopKafka();
      await sleep(settings.faultMs);
    } finally {
      await cluster.startKafka();
    }
    const healedAt = Date.now();
    load.markHealed(healedAt);
    const walletCaughtUp = later(catchUp(cluster, healedAt));
    const recoveryMs = await load.firstAckSinceHealed(120_000);
    return {
      recoveryMs,
      extra: later(
        walletCaughtUp.then((ms) => ({
          brokerStopToReadyMs: healedAt - stoppedAt,
          walletCaughtUpMs: ms ?? 'n/a',
        })),
      ),
      check: () => {
        assert.ok(cluster.ingest?.running, 'the ingest service still runs');
        assert.ok(cluster.wallets[0]?.running, 'the wallet still runs');
      },
    };
  }),
);

test('PostgreSQL connections terminated repeatedly under load', TIMEOUT, (t) =>
  scenario(t, 'postgres-terminate', 1, async ({ cluster, load }) => {
    const until = Date.now() + settings.faultMs;
    let terminated = 0;
    let rounds = 0;
    while (Date.now() < until) {
      terminated += await cluster.terminatePostgresConnections();
      rounds += 1;
      await sleep(200);
    }
    const healedAt = Date.now();
    load.markHealed(healedAt);
    assert.ok(terminated > 0, 'some connections were terminated');
    return {
      recoveryMs: await load.firstAckSinceHealed(60_000),
      extra: { connectionsTerminated: terminated, terminateRounds: rounds },
      check: () => assert.ok(cluster.ingest?.running, 'the ingest service still runs'),
    };
  }),
);

test(
  'Redis restarted empty under load: the wallet, restarted, rebuilds every total',
  TIMEOUT,
  (t) =>
    scenario(t, 'redis-restart-empty', 1, async ({ cluster }) => {
      const [wallet] = cluster.wallets;
      assert.ok(wallet);
      const lostAt = Date.now();
      await cluster.restartRedisEmpty();
      // Redis is back, empty. The wallet may notice and stop by itself, for its supervisor
      // to restart it; if it runs on, it is restarted as its own start-up message asks
      // ("stop every wallet instance, then start them again"). Either way the restarted
      // wallet must find no totals and rebuild them all from the topic.
      await sleep(settings.faultMs);
      const stoppedItself = !wallet.running;
      const exit = await wallet.kill('SIGTERM');
      const healedAt = Date.now();
      const restarted = await cluster.startWallet();
      return {
        recoveryMs: later(catchUp(cluster, healedAt)),
        extra: {
          redisEmptyToWalletRestartMs: healedAt - lostAt,
          walletStoppedItself: stoppedItself ? 1 : 0,
          walletExit: String(exit.code ?? exit.signal),
        },
        check: () =>
          assert.ok(
            restarted.logLine('Redis holds no totals for the topic: rebuilding them'),
            'the restarted wallet noticed the lost totals and replayed the topic',
          ),
      };
    }),
);

test(
  'Redis restarted empty under two wallets, both restarted at once: one rebuilds',
  TIMEOUT,
  (t) =>
    scenario(t, 'redis-restart-empty-two-wallets', 2, async ({ cluster }) => {
      const before = [...cluster.wallets];
      await cluster.restartRedisEmpty();
      await sleep(settings.faultMs);
      await Promise.all(before.map((wallet) => wallet.kill('SIGTERM')));
      const healedAt = Date.now();
      // Both find no totals at the same moment: without one rebuild at a time, both would
      // rewind the group and delete what the other had rebuilt, or one would refuse to start.
      const restarted = await Promise.all([cluster.startWallet(), cluster.startWallet()]);
      return {
        recoveryMs: later(catchUp(cluster, healedAt)),
        check: () => {
          const replayed = restarted.filter(
            (wallet) =>
              wallet.logLine('Redis holds no totals for the topic: rebuilding them') !== undefined,
          );
          assert.equal(replayed.length, 1, 'exactly one of the two rebuilt the totals');
        },
      };
    }),
);

/**
 * Milliseconds from `since` until every bucket's marker has reached `targets` (the
 * committed offsets when Redis went back): the lost writes are repaired. Undefined if not
 * within the timeout.
 */
const bucketsRepaired = async (
  cluster: Cluster,
  targets: Offsets,
  since: number,
): Promise<number | undefined> => {
  const repaired = await eventually(
    'every bucket back at the committed offsets',
    async () => {
      const markers = await cluster.bucketMarkers().catch(() => undefined);
      if (markers === undefined) return false;
      return [...markers.values()].every((bucket) =>
        [...targets].every(([p, offset]) => BigInt(bucket?.get(p) ?? '0') >= offset),
      );
    },
    { timeoutMs: settings.catchUpTimeoutMs, intervalMs: 100, onTimeout: 'resolve' },
  );
  return repaired ? Date.now() - since : undefined;
};

test(
  'Redis restarted from a snapshot taken under load: the wallets, running on, repair the lost buckets',
  TIMEOUT,
  (t) =>
    scenario(t, 'redis-snapshot-restore', FULL ? 2 : 1, async ({ cluster }) => {
      // A snapshot, then more load applied and committed, then Redis back at the snapshot:
      // its meta hash is there, the latest writes are not, and their offsets are committed.
      await cluster.snapshotRedis();
      // No lower than what the snapshot holds: markers only rise.
      const markers = await cluster.bucketMarkers();
      await sleep(settings.faultMs);
      const committed = await cluster.committedOffsets();
      await cluster.restartRedisFromSnapshot();
      const healedAt = Date.now();
      const behind = [...markers.values()].filter((bucket) =>
        [...committed].some(([p, offset]) => BigInt(bucket?.get(p) ?? '0') < offset),
      ).length;
      assert.ok(behind > 0, `the snapshot lost committed writes (${show(committed)})`);
      const wallets = [...cluster.wallets];
      return {
        recoveryMs: later(bucketsRepaired(cluster, committed, healedAt)),
        extra: { bucketsBehindAtRestart: behind, wallets: wallets.length },
        check: () => {
          for (const wallet of wallets) {
            assert.ok(wallet.running, `${wallet.name} ran on through the loss`);
            assert.equal(
              wallet.logLine('Redis lost the totals; stopping so that a restart rebuilds them'),
              undefined,
              'repaired in place, not stopped for a rebuild',
            );
          }
          assert.ok(
            wallets.some((w) => w.logLine('Redis lost records of a bucket: repairing it')),
            'the loss was logged',
          );
          assert.ok(
            wallets.some((w) => w.logLine('buckets repaired')),
            'the repair was logged',
          );
        },
      };
    }),
);

test('SIGTERM to the ingest under load drains: every purchase it read is answered', TIMEOUT, (t) =>
  scenario(t, 'ingest-sigterm', 1, async ({ cluster, load }) => {
    const ingest = cluster.ingest;
    assert.ok(ingest);
    const exit = await ingest.kill('SIGTERM');
    // A purchase the ingest read was answered before its connection closed; one it did
    // not read got no reply and was not stored. Stored without a reply: read, not answered.
    const noReply = [...load.purchases.values()]
      .filter((p) => p.firstFate === 'noReply')
      .map((p) => p.id);
    const pool = await cluster.pool();
    const storedWithoutReply = await pool
      .anyFirst(
        sql.type(idRow)`SELECT id FROM purchases WHERE id = ANY(${sql.array(noReply, 'text')})`,
      )
      .finally(() => pool.end());
    const closes = load.summary().closesByCode;
    const draining = ingest.logLine('draining');
    const healedAt = Date.now();
    load.markHealed(healedAt);
    await cluster.startIngest();
    return {
      recoveryMs: await load.firstAckSinceHealed(60_000),
      extra: {
        unackedAtDrain: Number(draining?.['unacked'] ?? -1),
        noReplyAtClose: noReply.length,
      },
      check: () => {
        assert.equal(exit.code, 0, 'the ingest stopped cleanly');
        assert.equal(
          ingest.logLine('drain timed out; unacked purchases stay in the outbox'),
          undefined,
        );
        assert.ok(draining, 'the ingest logged its drain');
        assert.deepEqual(storedWithoutReply.slice(0, 20), [], 'stored, yet closed without a reply');
        assert.ok((closes['1001'] ?? 0) > 0, `closed with 1001 (${JSON.stringify(closes)})`);
        assert.equal(closes['1006'], undefined, `none dropped (${JSON.stringify(closes)})`);
      },
    };
  }),
);

test('SIGTERM to the wallet under load: it commits exactly what it applied', TIMEOUT, (t) =>
  scenario(t, 'wallet-sigterm', 1, async ({ cluster }) => {
    const [wallet] = cluster.wallets;
    assert.ok(wallet);
    const exit = await wallet.kill('SIGTERM');
    const committed = await cluster.committedOffsets();
    const applied = await cluster.appliedOffsets();
    const stopped = wallet.logLine('wallet service stopped');
    const healedAt = Date.now();
    await cluster.startWallet();
    // Committed offset = one past the last applied record, on every partition, or one
    // more when the fetch also held that record's transaction marker (which takes an
    // offset and is no purchase).
    const expected = new Map([...applied].map(([p, offset]) => [p, offset + 1n]));
    const pastMarkers = new Map(
      [...expected].map(([p, offset]) => {
        const at = committed.get(p);
        return [p, at === offset + 1n ? at : offset];
      }),
    );
    return {
      recoveryMs: later(catchUp(cluster, healedAt)),
      extra: {
        appliedBeforeStop: Number(stopped?.['applied'] ?? -1),
        skippedBeforeStop: Number(stopped?.['skipped'] ?? -1),
        // Applied to Redis, not committed: must be 0.
        appliedNotCommitted: lag(expected, committed),
      },
      check: () => {
        assert.equal(exit.code, 0, 'the wallet stopped cleanly');
        assert.ok(stopped, 'the wallet logged its stop');
        assert.equal(
          show(committed),
          show(pastMarkers),
          'committed offsets = applied offsets + 1 (+ 1 for a transaction marker)',
        );
        assert.ok(committed.size > 0, 'the wallet had applied something');
      },
    };
  }),
);

test(
  'the topic deleted and created again: the wallet counts the new one from its start',
  TIMEOUT,
  async (t) => {
    const cluster = await createCluster({ name: 'topic-recreated' });
    const loadOf = () =>
      startLoad({
        url: cluster.ingestUrl,
        clients: settings.clients,
        window: settings.window,
        ratePerClient: settings.ratePerClient,
        users: settings.users,
      });
    let load: Load | undefined;
    try {
      await Promise.all([cluster.startIngest(), cluster.startWallet()]);
      const [wallet] = cluster.wallets;
      assert.ok(wallet);
      // The old topic's history, checked like any other.
      load = loadOf();
      await load.waitForAcks(100, 60_000);
      await sleep(settings.beforeMs);
      await load.stop();
      const first = await checkInvariants(
        cluster,
        load,
        await load.resendUnacked(settings.resendDeadlineMs),
        settings,
      );
      assertInvariants(first);

      // The topic goes, and comes back empty under the same name: its offsets start at 0
      // again, far below what the wallet's totals hold as applied.
      const admin = cluster.kafka.admin();
      await admin.connect();
      const [{ partitions } = { partitions: [] }] = (
        await admin.fetchTopicMetadata({ topics: [cluster.topic] })
      ).topics;
      await admin.deleteTopics({ topics: [cluster.topic] });
      await eventually(
        'the topic gone',
        async () => !(await admin.listTopics()).includes(cluster.topic),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const deletedAt = Date.now();
      await eventually(
        'the topic created again',
        () =>
          admin
            .createTopics({
              waitForLeaders: true,
              topics: [{ topic: cluster.topic, numPartitions: partitions.length }],
            })
            .then(() => true),
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      await admin.disconnect();
      // The old purchases went with their topic: PostgreSQL starts a new history beside the
      // new one, so that the checker compares the totals with what the new topic holds.
      const pool = await cluster.pool();
      await pool.query(sql.unsafe`TRUNCATE purchases, outbox`);
      await pool.end();

      // The wallet notices and stops, for its supervisor (here) to restart it; one that
      // does not is restarted all the same, as an operator recreating a topic would.
      const stoppedItself = await eventually(
        'the wallet stopping by itself',
        () => Promise.resolve(!wallet.running),
        { timeoutMs: 30_000, intervalMs: 100, onTimeout: 'resolve' },
      );
      const noticedMs = Date.now() - deletedAt;
      if (!stoppedItself) await wallet.kill('SIGTERM');
      const restarted = await cluster.startWallet();
      const healedAt = Date.now();

      load = loadOf();
      await load.waitForAcks(100, 60_000);
      const recovery = later(catchUp(cluster, healedAt));
      await sleep(settings.afterMs);
      await load.stop();
      const report = await checkInvariants(
        cluster,
        load,
        await load.resendUnacked(settings.resendDeadlineMs),
        settings,
      );
      const recoveryMs = await recovery;
      reportScenario(t, 'topic-recreated', report, recoveryMs, {
        ...report.extra,
        noticedMs,
        oldTopicPurchases: first.sent,
      });
      assert.ok(stoppedItself, 'the wallet stopped by itself');
      assert.ok(
        wallet.logLine(
          'the topic was deleted and created again: the totals held are of the old one; stopping so that a restart rebuilds them',
        ),
        'the wallet said why it stopped',
      );
      assert.ok(
        restarted.logLine(
          'Redis holds the totals of an earlier topic of this name: rebuilding them',
        ),
        'the restarted wallet rebuilt the totals for the new topic',
      );
    } catch (error) {
      t.diagnostic(`service logs of ${cluster.name}: ${cluster.logDir}`);
      await load?.stop().catch(() => undefined);
      await cluster
        .close()
        .catch((cleanup: unknown) => t.diagnostic(`cleanup: ${String(cleanup)}`));
      throw error;
    }
    await load.stop();
    await cluster.close();
  },
);
