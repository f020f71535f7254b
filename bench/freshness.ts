import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { eventually } from '../test/harness/eventually.ts';
import { createLatencyHistogram } from './histogram.ts';
import type { FreshnessResult } from './types.ts';
import { connectBalanceCaller } from './walletClient.ts';

/** How {@link runFreshness} probes. */
export interface FreshnessOptions {
  readonly wsUrl: string;
  readonly grpcAddress: string;
  /** Probe users are `${userPrefix}${0 … users-1}`: ids no other load uses. */
  readonly userPrefix: string;
  readonly users: number;
  readonly idPrefix: string;
  readonly seconds: number;
  /** Pause between one probe's end and the next one's start. */
  readonly intervalMs: number;
  /** A probe whose total has not shown after this long counts as timed out. */
  readonly timeoutMs: number;
  /** How often GetBalance is polled while waiting. */
  readonly pollMs?: number;
}

/**
 * Freshness: sends one purchase at a time on its own connection, and from its ack polls
 * GetBalance until the user's total includes it. Meant to run beside a load run, so it
 * measures freshness under that load.
 */
export const runFreshness = async (options: FreshnessOptions): Promise<FreshnessResult> => {
  const histogram = createLatencyHistogram();
  const socket = await new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(options.wsUrl, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
  const caller = connectBalanceCaller(options.grpcAddress, 1_000);
  const totalCents = (userId: string) =>
    new Promise<number | undefined>((resolve) =>
      caller.totalCents(userId, (error, cents) => resolve(error === null ? cents : undefined)),
    );
  const expected = new Map<string, number>();
  const until = performance.now() + options.seconds * 1_000;
  let probes = 0;
  let timedOut = 0;
  let sequence = 0;
  try {
    while (performance.now() < until) {
      sequence += 1;
      const userId = `${options.userPrefix}${sequence % options.users}`;
      const cents = 100 + (sequence % 900);
      const id = `${options.idPrefix}-${sequence}`;
      const reply = new Promise<{ status: string }>((resolve) =>
        socket.once('message', (data: Buffer) =>
          resolve(JSON.parse(data.toString('utf8')) as { status: string }),
        ),
      );
      socket.send(JSON.stringify({ id, user_id: userId, amount: cents / 100 }));
      if ((await reply).status !== 'ack') continue;
      const ackedAt = performance.now();
      const total = (expected.get(userId) ?? 0) + cents;
      expected.set(userId, total);
      probes += 1;
      const seen = await eventually(
        `${userId} showing ${total}`,
        async () => (await totalCents(userId)) === total,
        { timeoutMs: options.timeoutMs, intervalMs: options.pollMs ?? 2, onTimeout: 'resolve' },
      );
      if (seen) histogram.record(performance.now() - ackedAt);
      else timedOut += 1;
      await sleep(options.intervalMs);
    }
  } finally {
    socket.close();
    caller.close();
  }
  return { probes, latency: histogram.percentiles(), timedOut };
};
