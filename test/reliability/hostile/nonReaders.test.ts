// Clients that never read their replies, against the ingest service as its own process:
// the server stops reading them (TCP pushes back), its memory stays bounded, and a
// well-behaved client keeps its acks.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { eventually } from '../../harness/eventually.ts';
import { reliabilityLevel } from '../../helpers.ts';
import { connectClient } from '../../wsClient.ts';
import { openRawWebSocket, textFrame, type RawWebSocket } from '../hostileRawSocket.ts';
import { countStoredForUsers, startProbe, type ProbeReport } from '../hostileServices.ts';
import { recordFigures } from '../results.ts';
import { assertProbe, startAbusedIngest } from './abuse.ts';

const FULL = reliabilityLevel === 'full';

/**
 * Peak RSS allowed to the ingest process while clients that never read push at it, each
 * scenario on a fresh process (an idle one peaks at 120–170 MiB). Measured before the
 * bounds were set, on the 2-core test machine: 318–363 MiB in reduced runs (3 non-readers,
 * 8 s, ~150,000 of their purchases taken in), 394–427 MiB in full runs (12 non-readers,
 * 30 s, ~610,000 taken in). That is the process working at full speed; what shows that
 * replies are not queued for ever is that it stops taking in (asserted below). Each bound
 * is about the highest peak plus a fifth to a quarter.
 */
const NON_READER_RSS_BOUND_MIB = 512;

/** An array frame of 100 purchases with 64-character ids (so replies are large). */
const abuserFrame = (client: number, frame: number): Buffer => {
  const parts: string[] = [];
  for (let k = 0; k < 100; k += 1) {
    const id = `abuser${client}-${frame}-${k}-`.padEnd(64, 'x');
    // Users spread over partitions: one user's burst trips the Kafka bug reported in
    // overload.test.ts, which is not what this scenario is about.
    parts.push(`{"id":"${id}","user_id":"abuser${client}-user-${k % 50}","amount":"1.25"}`);
  }
  return textFrame(`[${parts.join(',')}]`);
};

/**
 * Writes frames for as long as the kernel takes them, until `until`. Resolves with the
 * frames written and whether the socket was left unable to drain (TCP pushing back).
 */
const pushUntil = async (
  socket: Socket,
  client: number,
  until: number,
): Promise<{ frames: number; stalled: boolean }> => {
  let frames = 0;
  while (Date.now() < until && !socket.destroyed) {
    const writable = socket.write(abuserFrame(client, frames));
    frames += 1;
    if (writable) continue;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(0, until - Date.now()));
    try {
      await once(socket, 'drain', { signal: abort.signal });
    } catch {
      break;
    } finally {
      clearTimeout(timer);
    }
  }
  return { frames, stalled: socket.writableNeedDrain };
};

describe('abusive clients', () => {
  test('clients that never read their replies stop being read; memory stays bounded', async (t) => {
    const service = await startAbusedIngest(t);
    const nonReaders = FULL ? 12 : 3;
    const pushMs = FULL ? 30_000 : 8_000;
    service.process.resetPeakRss();
    const probe = await startProbe(service.url, { prefix: 'nonreader-probe' });
    const raws: RawWebSocket[] = [];
    let report: ProbeReport | undefined;
    let pushed: Array<{ frames: number; stalled: boolean }>;
    // Counts of the non-readers' purchases stored, 2 s apart (-1: not counted yet).
    let storedBefore = -1;
    let storedAfter = -1;
    try {
      for (let c = 0; c < nonReaders; c += 1) raws.push(await openRawWebSocket(service.port));
      const until = Date.now() + pushMs;
      pushed = await Promise.all(raws.map((raw, c) => pushUntil(raw.socket, c, until)));
      // What the server had already taken in it still works off; then it reads no more.
      await eventually(
        'the intake from the non-readers settled',
        async () => {
          storedBefore = storedAfter;
          storedAfter = await countStoredForUsers(service.pool, 'abuser');
          return storedAfter === storedBefore;
        },
        { timeoutMs: FULL ? 180_000 : 60_000, intervalMs: 2_000, onTimeout: 'resolve' },
      );
      assert.ok(service.alive(), 'the ingest process is still running');
    } finally {
      report = await probe.stop();
      for (const raw of raws) raw.socket.destroy();
    }
    const peakRssMiB = service.peakRssMiB();
    const written = pushed.reduce((sum, p) => sum + p.frames * 100, 0);
    recordFigures({
      scenario: 'hostile-non-reading-clients',
      sent: written,
      acked: report.acked.length,
      peakRssMiB,
      extra: {
        nonReaders,
        pushSeconds: pushMs / 1_000,
        storedFromNonReaders: storedAfter,
        probeMaxReplyMs: report.maxReplyMs,
      },
    });
    assertProbe(report);
    pushed.forEach((p, c) =>
      assert.ok(p.stalled, `non-reader ${c} was pushed back by TCP after ${p.frames} frames`),
    );
    assert.equal(storedAfter, storedBefore, 'the server stopped taking in from the non-readers');
    // Had it kept reading, it would have taken in all they wrote, once they stopped writing.
    assert.ok(storedAfter < written, `${storedAfter} of ${written} taken in: reading stopped`);
    assert.ok(
      peakRssMiB < NON_READER_RSS_BOUND_MIB,
      `peak RSS ${peakRssMiB} MiB < ${NON_READER_RSS_BOUND_MIB} MiB`,
    );
    // Once they are gone the server serves as before.
    const client = await connectClient(service.url);
    client.send({ id: 'after-non-readers', user_id: 'after', amount: 1 });
    assert.deepEqual(await client.next(10_000), {
      status: 'ack',
      id: 'after-non-readers',
      duplicate: false,
    });
    await client.close();
  });
});
