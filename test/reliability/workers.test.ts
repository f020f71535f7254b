// An ingest worker SIGKILLed under load among two, and two wallet workers sharing the
// partitions: the primary restarts the worker, the clients re-send what was not acked
// with its ids, and the invariants hold — nothing acked lost, nothing counted twice,
// every total exact.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../harness/eventually.ts';
import { createCluster } from './cluster.ts';
import { checkInvariants } from './invariants.ts';
import { baseSettings, FULL, sleep } from './level.ts';
import { reportScenario } from './report.ts';
import { startLoad, type Load } from './load.ts';

// More clients than elsewhere in a reduced run: connections to spread over the workers.
const settings = { ...baseSettings, clients: FULL ? 8 : 6 };

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
      // Recovery: from the kill until the primary runs two workers again.
      reportScenario(t, name, report, restartMs, extra);
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
