// Frames over the size limit, however announced, and violations of WebSocket itself,
// against the ingest service as its own process: each closes its connection with the
// documented code, nothing of them is stored, and a well-behaved client keeps its acks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reliabilityLevel } from '../../helpers.ts';
import { connectClient } from '../../wsClient.ts';
import { encodeFrame, OPCODE, openRawWebSocket, readCloseCode } from '../hostileRawSocket.ts';
import { countStoredForUsers, startProbe, type ProbeReport } from '../hostileServices.ts';
import { recordFigures } from '../results.ts';
import { ABUSE_MAX_FRAME_BYTES, assertProbe, startAbusedIngest } from './abuse.ts';

const FULL = reliabilityLevel === 'full';

/** While clients send frames over the limit: measured 157–164 MiB reduced, 174–194 full. */
const OVERSIZE_RSS_BOUND_MIB = 256;

describe('abusive clients', () => {
  test('frames over the limit close with 1009, however announced; protocol violations with 1002', async (t) => {
    const service = await startAbusedIngest(t);
    const rounds = FULL ? 10 : 2;
    const parallel = FULL ? 50 : 20;
    service.process.resetPeakRss();
    const probe = await startProbe(service.url, { prefix: 'oversize-probe' });
    let report: ProbeReport | undefined;
    const closes: Record<string, number> = {};
    const rawCase = async (name: string, expected: number, frames: readonly Buffer[]) => {
      const raw = await openRawWebSocket(service.port);
      raw.socket.on('error', () => undefined);
      try {
        for (const frame of frames) raw.socket.write(frame);
        assert.equal(await readCloseCode(raw), expected, name);
        closes[name] = (closes[name] ?? 0) + 1;
      } finally {
        raw.socket.destroy();
      }
    };
    const limit = ABUSE_MAX_FRAME_BYTES;
    try {
      // Exactly the limit is answered; one byte more closes.
      const client = await connectClient(service.url);
      const body = '{"id":"exactly-the-limit","user_id":"limit","amount":1}';
      client.send(body + ' '.repeat(limit - body.length));
      assert.deepEqual(await client.next(10_000), {
        status: 'ack',
        id: 'exactly-the-limit',
        duplicate: false,
      });
      client.send(body + ' '.repeat(limit - body.length + 1));
      assert.equal(await client.closed, 1009);

      // Announced but never sent: refused on the header, no buffering of 1 TiB.
      await rawCase('announced 1 TiB', 1009, [
        encodeFrame(OPCODE.text, Buffer.from('{"user_id":'), { declaredLength: 2 ** 40 }),
      ]);
      await rawCase('announced 2^53', 1009, [
        encodeFrame(OPCODE.text, Buffer.alloc(0), { declaredLength: Number.MAX_SAFE_INTEGER }),
      ]);
      await rawCase('binary over the limit', 1009, [
        encodeFrame(OPCODE.binary, Buffer.alloc(limit + 1)),
      ]);
      // Fragments each under the limit, together over it.
      const fragment = Buffer.alloc(limit / 2, 0x20);
      await rawCase('fragments over the limit', 1009, [
        encodeFrame(OPCODE.text, Buffer.from('['), { fin: false }),
        encodeFrame(OPCODE.continuation, fragment, { fin: false }),
        encodeFrame(OPCODE.continuation, fragment, { fin: false }),
        encodeFrame(OPCODE.continuation, Buffer.from(']')),
      ]);
      // Violations of WebSocket itself are closed by the WebSocket layer.
      const purchase = Buffer.from('{"user_id":"v","amount":1}');
      await rawCase('unmasked client frame', 1002, [
        encodeFrame(OPCODE.text, purchase, { masked: false }),
      ]);
      await rawCase('ping over 125 bytes', 1002, [encodeFrame(OPCODE.ping, Buffer.alloc(126))]);
      await rawCase('fragmented ping', 1002, [
        encodeFrame(OPCODE.ping, Buffer.alloc(4), { fin: false }),
      ]);
      await rawCase('reserved opcode', 1002, [encodeFrame(3, purchase)]);
      await rawCase('RSV1 without an extension', 1002, [
        encodeFrame(OPCODE.text, purchase, { rsv1: true }),
      ]);
      await rawCase('continuation with nothing to continue', 1002, [
        encodeFrame(OPCODE.continuation, purchase),
      ]);
      await rawCase('close with an invalid code', 1002, [
        encodeFrame(OPCODE.close, Buffer.from([0x03, 0xe7])),
      ]);

      // Many at once, round after round: each closed with 1009, the probe unaffected.
      for (let round = 0; round < rounds; round += 1) {
        const codes = await Promise.all(
          Array.from({ length: parallel }, async (_, i) => {
            const big = await connectClient(service.url);
            big.socket.on('error', () => undefined);
            big.send(`{"user_id":"big-${i}","amount":1,"pad":"${'p'.repeat(1_048_576)}"}`);
            return big.closed;
          }),
        );
        assert.deepEqual(
          codes,
          Array.from({ length: parallel }, () => 1009),
        );
        closes['1 MiB text, in parallel'] = (closes['1 MiB text, in parallel'] ?? 0) + parallel;
      }
      assert.ok(service.alive(), 'the ingest process is still running');
    } finally {
      report = await probe.stop();
    }
    const peakRssMiB = service.peakRssMiB();
    recordFigures({
      scenario: 'hostile-oversize-frames',
      acked: report.acked.length,
      peakRssMiB,
      extra: { ...closes, probeMaxReplyMs: report.maxReplyMs },
    });
    assertProbe(report);
    assert.ok(
      peakRssMiB < OVERSIZE_RSS_BOUND_MIB,
      `peak RSS ${peakRssMiB} MiB < ${OVERSIZE_RSS_BOUND_MIB} MiB`,
    );
    // Nothing from the oversize or broken frames was stored.
    assert.equal(await countStoredForUsers(service.pool, 'big-'), 0);
    assert.equal(await countStoredForUsers(service.pool, 'v'), 0);
  });
});
