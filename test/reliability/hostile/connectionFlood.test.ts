// A flood of connections against the ingest service as its own process — idle, half-open,
// garbage frames, raw TCP garbage — while a well-behaved client keeps being served and the
// process's memory stays bounded.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { reliabilityLevel } from '../../helpers.ts';
import { connectClient, type TestClient } from '../../wsClient.ts';
import {
  openRawWebSocket,
  openTcp,
  upgradeRequest,
  type RawWebSocket,
} from '../hostileRawSocket.ts';
import { startProbe, within, type ProbeReport } from '../hostileServices.ts';
import { recordFigures } from '../results.ts';
import { assertProbe, startAbusedIngest } from './abuse.ts';

const FULL = reliabilityLevel === 'full';

/** During the connection flood: measured 159 MiB (300 connections), 293–303 MiB (1,000). */
const FLOOD_RSS_BOUND_MIB = 400;

const GARBAGE: ReadonlyArray<readonly [(client: TestClient) => void, string]> = [
  [(c) => c.send('not json'), 'invalid_json'],
  [(c) => c.socket.send(randomBytes(32), { binary: true }), 'unsupported_frame'],
  [(c) => c.send('{"user_id":"","amount":1}'), 'invalid_purchase'],
  [(c) => c.send('{"user_id":"garbage","amount":-1}'), 'invalid_purchase'],
  [(c) => c.send('['.repeat(5_000)), 'invalid_json'],
  [(c) => c.send(JSON.stringify(Array.from({ length: 1_001 }, () => 1))), 'too_large'],
];

/** Resolves once `socket` closes, or after `timeoutMs` with false. */
const closedWithin = (socket: Socket, timeoutMs: number): Promise<boolean> =>
  socket.destroyed || socket.closed
    ? Promise.resolve(true)
    : within(
        once(socket, 'close').then(() => true),
        timeoutMs,
        false,
      );

describe('abusive clients', () => {
  test('a flood of connections: idle, half-open, garbage — others keep being served', async (t) => {
    const service = await startAbusedIngest(t);
    const connections = FULL ? 1_000 : 300;
    const holdMs = FULL ? 15_000 : 4_000;
    service.process.resetPeakRss();
    const probe = await startProbe(service.url, { prefix: 'flood-probe' });
    const idle: RawWebSocket[] = [];
    const halfOpen: Socket[] = [];
    const tcpGarbage: Array<{ socket: Socket; response: Promise<string> }> = [];
    const talkers: TestClient[] = [];
    let report: ProbeReport | undefined;
    let garbageReplies = 0;
    try {
      // All at once: a quarter upgraded and silent, a quarter sending garbage frames, a
      // quarter stuck half-way through the HTTP upgrade, a quarter raw TCP garbage.
      await Promise.all(
        Array.from({ length: connections }, async (_, i) => {
          switch (i % 4) {
            case 0:
              idle.push(await openRawWebSocket(service.port));
              return;
            case 1: {
              const client = await connectClient(service.url);
              client.socket.on('error', () => undefined);
              talkers.push(client);
              return;
            }
            case 2: {
              const socket = await openTcp(service.port);
              socket.on('error', () => undefined);
              socket.write(upgradeRequest(service.port).slice(0, 40));
              halfOpen.push(socket);
              return;
            }
            default: {
              const socket = await openTcp(service.port);
              socket.on('error', () => undefined);
              let response = '';
              socket.on('data', (chunk: Buffer) => {
                response += chunk.toString('latin1');
              });
              socket.write(Buffer.concat([randomBytes(200), Buffer.from('\r\n\r\n')]));
              tcpGarbage.push({
                socket,
                response: closedWithin(socket, 10_000).then(() => response),
              });
            }
          }
        }),
      );
      const holdUntil = Date.now() + holdMs;
      await Promise.all(
        talkers.map(async (client) => {
          while (Date.now() < holdUntil) {
            for (const [send] of GARBAGE) send(client);
            const replies = await client.take(GARBAGE.length, 30_000);
            replies.forEach((reply, i) => {
              assert.equal(reply.status, 'error');
              assert.equal(reply.code, GARBAGE[i]?.[1]);
            });
            garbageReplies += replies.length;
            await sleep(100);
          }
        }),
      );
      for (const { response } of tcpGarbage) {
        assert.match(await response, /^HTTP\/1\.1 400/, 'TCP garbage is refused as a bad request');
      }
      assert.ok(service.alive(), 'the ingest process is still running');
    } finally {
      report = await probe.stop();
      for (const raw of idle) raw.socket.destroy();
      for (const socket of halfOpen) socket.destroy();
      for (const { socket } of tcpGarbage) socket.destroy();
      for (const client of talkers) client.socket.terminate();
    }
    const peakRssMiB = service.peakRssMiB();
    recordFigures({
      scenario: 'hostile-connection-flood',
      acked: report.acked.length,
      peakRssMiB,
      extra: {
        connections,
        idleUpgraded: idle.length,
        garbageSenders: talkers.length,
        halfOpenHttp: halfOpen.length,
        tcpGarbage: tcpGarbage.length,
        garbageReplies,
        holdSeconds: holdMs / 1_000,
        probeMaxReplyMs: report.maxReplyMs,
      },
    });
    assertProbe(report);
    assert.ok(
      peakRssMiB < FLOOD_RSS_BOUND_MIB,
      `peak RSS ${peakRssMiB} MiB < ${FLOOD_RSS_BOUND_MIB} MiB`,
    );
  });
});
