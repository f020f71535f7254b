// An ingest worker SIGKILLed under load among two, and two wallet workers sharing the
// partitions: the primary restarts the worker, the clients re-send what was not acked
// with its ids, and the invariants hold — nothing acked lost, nothing counted twice,
// every total exact.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../harness/eventually.ts';
import { reliabilityLevel } from '../helpers.ts';
import { createCluster } from './cluster.ts';
import { assertInvariants, checkInvariants, describeViolations } from './invariants.ts';
import { startLoad, type Load } from './load.ts';
import { recordFigures } from './results.ts';

const FULL = reliabilityLevel === 'full';
const settings = {
  clients: FULL ? 8 : 6,
  window: 50,
  ratePerClient: 300,
  users: FULL ? 100 : 40,
  beforeMs: FULL ? 15_000 : 2_000,
  afterMs: FULL ? 15_000 : 2_000,
  resendDeadlineMs: FULL ? 180_000 : 90_000,
  catchUpTimeoutMs: FULL ? 180_000 : 90_000,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(
  'one of two ingest workers SIGKILLed under load, restarted by the primary',
  { timeout: FULL ? 900_000 : 240_000 },
  async (t) => {
    const name = 'ingest-worker-sigkill';
    const cluster = await createCluster({
      name,
      ingestEnv: { INGEST_WORKERS: '2' },
      walletEnv: { WALLET_WORKERS: '2' },
    });
    let load: Load | undefined;
    try {
      await Promise.all([cluster.startIngest(), cluster.startWallet()]);
      const ingest = cluster.ingest;
      assert.ok(ingest);
      load = startLoad({ url: cluster.ingestUrl, ...settings });
      await load.waitForAcks(100, 60_000);
      await sleep(settings.beforeMs);
      const [victim, survivor] = ingest.childPids();
      assert.ok(victim !== undefined && survivor !== undefined, 'two workers');
      const ackedAtKill = load.ackedCount;
      process.kill(victim, 'SIGKILL');
      const killedAt = Date.now();
      await eventually(
        'the primary restarted the killed worker',
        () => {
          const pids = ingest.childPids();
          return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor);
        },
        { timeoutMs: 60_000 },
      );
      // The survivor answers meanwhile: the port is the primary's, and stays open.
      const restartMs = Date.now() - killedAt;
      const acksWhileRestarting = load.ackedCount - ackedAtKill;
      load.markHealed(killedAt);
      await sleep(settings.afterMs);
      await load.stop();
      const resend = await load.resendUnacked(settings.resendDeadlineMs);
      const report = await checkInvariants(cluster, load, resend, settings);
      const restarted = ingest.tail.some((line) => line.includes('worker exited; restarting it'));
      const extra = { ...report.extra, workers: 2, acksWhileRestarting };
      recordFigures({
        scenario: name,
        sent: report.sent,
        acked: report.acked,
        refused: report.refused,
        lost: report.lost,
        doubleCounted: report.doubleCounted,
        // From the kill until the primary runs two workers again.
        recoveryMs: restartMs,
        extra,
      });
      t.diagnostic(
        `${name}: sent ${report.sent}, acked ${report.acked}, refused ${report.refused}, ` +
          `lost ${report.lost}, doubleCounted ${report.doubleCounted}, ` +
          `recoveryMs ${restartMs} ${JSON.stringify(extra)}`,
      );
      const violations = describeViolations(report);
      if (violations !== '') t.diagnostic(`violations:\n${violations}`);
      assertInvariants(report);
      assert.ok(restarted, 'the primary logged the restart');
      assert.ok(ingest.running, 'the primary kept running');
      assert.ok(report.refused > 0, 'the kill cut purchases in flight: the resend had work to do');
      assert.ok(
        acksWhileRestarting > 0,
        'the other worker kept acking while the killed one restarted',
      );
    } catch (error) {
      t.diagnostic(`service logs of ${cluster.name}: ${cluster.logDir}`);
      await load?.stop().catch(() => undefined);
      await cluster
        .close()
        .catch((cleanup: unknown) => t.diagnostic(`cleanup: ${String(cleanup)}`));
      throw error;
    }
    await cluster.close();
  },
);
