import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { eventually } from '../test/harness/eventually.ts';
import { createLatencyHistogram } from './histogram.ts';
import type { LoadResult, LoadSettings } from './types.ts';

/** What {@link runLoad} drives and how. */
export interface LoadOptions extends LoadSettings {
  readonly url: string;
  /** Seconds of load before measuring starts (connections warm, batches flowing). */
  readonly warmupSeconds: number;
  /** Prefix of every purchase id, unique per run so runs never collide. */
  readonly idPrefix: string;
  /** Prefix of the user ids: users are `${userPrefix}${0 … users-1}`. */
  readonly userPrefix: string;
  /** How long to wait for the last replies once sending stops. */
  readonly drainTimeoutMs?: number;
  /** Called for every ack with the purchase's user and cents (e.g. to check totals). */
  readonly onAck?: (userId: string, cents: number) => void;
  /** Ends the run early, as if its seconds were up (the rates count the seconds it ran). */
  readonly stop?: AbortSignal;
}

interface Sent {
  readonly at: number;
  readonly userId: string;
  readonly cents: number;
}

interface Reply {
  readonly status: string;
  readonly id?: string;
  readonly code?: string;
  readonly results?: readonly Reply[];
}

const connect = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });

/**
 * The load generator: `connections` WebSocket clients, each keeping up to `window`
 * purchases unanswered (and, with `rate`, sending at that pace across all of them), for
 * `warmupSeconds + seconds`. Every reply's latency from its purchase's send is recorded in
 * an HDR histogram; only purchases sent during the measured seconds count. Replies are
 * matched by purchase id, so servers answering out of order are measured the same way.
 */
export const runLoad = async (options: LoadOptions): Promise<LoadResult> => {
  const { connections, window, frameSize, users, seconds, rate, warmupSeconds } = options;
  const histogram = createLatencyHistogram();
  const errors: Record<string, number> = {};
  const sockets = await Promise.all(
    Array.from({ length: connections }, () => connect(options.url)),
  );
  const inFlight = sockets.map(() => new Map<string, Sent>());
  let sequence = 0;
  let sent = 0;
  let acked = 0;
  // Acks read during the measured seconds, whenever their purchase was sent: the
  // sustained rate, even when latency is longer than the run.
  let ackedInWindow = 0;
  let sending = true;
  const startedAt = performance.now();
  const measureFrom = startedAt + warmupSeconds * 1_000;
  const measureTo = measureFrom + seconds * 1_000;
  const measured = (at: number) => at >= measureFrom && at < measureTo;
  // Under a fixed rate, purchases are released by a clock; the window still bounds each
  // connection, and what the window holds back is counted as not sent (never queued).
  let released = 0;
  let credit = rate === undefined ? Infinity : 0;

  const sendFrame = (index: number, socket: WebSocket, count: number) => {
    const pending = inFlight[index];
    if (pending === undefined) return;
    const now = performance.now();
    const parts: string[] = [];
    for (let i = 0; i < count; i += 1) {
      sequence += 1;
      // Zero-padded, so ids ascend like the time-ordered ids (UUIDv7) clients are told to
      // use: PostgreSQL appends to its primary key index instead of splitting it throughout.
      const id = `${options.idPrefix}-${String(sequence).padStart(10, '0')}`;
      const userId = `${options.userPrefix}${sequence % users}`;
      const cents = 1 + (sequence % 9_999);
      pending.set(id, { at: now, userId, cents });
      parts.push(
        `{"id":"${id}","user_id":"${userId}","amount":${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}}`,
      );
    }
    if (measured(now)) sent += count;
    socket.send(frameSize === 1 ? (parts[0] ?? '') : `[${parts.join(',')}]`);
  };

  const fill = (index: number) => {
    const socket = sockets[index];
    const pending = inFlight[index];
    if (socket === undefined || pending === undefined || !sending) return;
    if (socket.readyState !== WebSocket.OPEN) return;
    while (pending.size + frameSize <= window && credit >= frameSize) {
      credit -= frameSize;
      sendFrame(index, socket, frameSize);
    }
  };

  const settle = (index: number, reply: Reply, at: number) => {
    const pending = inFlight[index];
    if (pending === undefined || reply.id === undefined) return;
    const purchase = pending.get(reply.id);
    if (purchase === undefined) return;
    pending.delete(reply.id);
    if (reply.status === 'ack' && measured(at)) ackedInWindow += 1;
    if (!measured(purchase.at)) return;
    if (reply.status === 'ack') {
      acked += 1;
      histogram.record(at - purchase.at);
      options.onAck?.(purchase.userId, purchase.cents);
    } else {
      const code = reply.code ?? reply.status;
      errors[code] = (errors[code] ?? 0) + 1;
    }
  };

  sockets.forEach((socket, index) => {
    socket.on('message', (data: Buffer) => {
      const at = performance.now();
      const reply = JSON.parse(data.toString('utf8')) as Reply;
      if (reply.status === 'batch') for (const item of reply.results ?? []) settle(index, item, at);
      else if (reply.id !== undefined) settle(index, reply, at);
      else errors[reply.code ?? reply.status] = (errors[reply.code ?? reply.status] ?? 0) + 1;
      fill(index);
    });
    socket.on('close', () => {
      const pending = inFlight[index];
      if (pending === undefined) return;
      for (const purchase of pending.values()) {
        if (measured(purchase.at)) errors['closed'] = (errors['closed'] ?? 0) + 1;
      }
      pending.clear();
    });
  });

  let clock: NodeJS.Timeout | undefined;
  if (rate === undefined) {
    sockets.forEach((_, index) => fill(index));
  } else {
    clock = setInterval(() => {
      const due = Math.floor(((performance.now() - startedAt) / 1_000) * rate);
      credit += due - released;
      released = due;
      for (let index = 0; index < sockets.length; index += 1) fill(index);
      // What the windows could not take is dropped, not owed: an open-loop client would
      // not queue it either, and queued credit would burst later.
      credit = Math.min(credit, frameSize * sockets.length);
    }, 2);
  }

  await sleep(measureTo - performance.now(), undefined, { signal: options.stop }).catch(
    () => undefined,
  );
  const ranSeconds = Math.max(
    0.001,
    (Math.min(performance.now(), measureTo) - measureFrom) / 1_000,
  );
  sending = false;
  if (clock !== undefined) clearInterval(clock);
  await eventually('the replies due', () => inFlight.every((pending) => pending.size === 0), {
    timeoutMs: options.drainTimeoutMs ?? 15_000,
    intervalMs: 20,
    onTimeout: 'resolve',
  });
  for (const pending of inFlight) {
    for (const purchase of pending.values()) {
      if (measured(purchase.at)) errors['no_reply'] = (errors['no_reply'] ?? 0) + 1;
    }
    // Counted once: closing the sockets below must not count them again as closed.
    pending.clear();
  }
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.close(1000);
          setTimeout(() => {
            socket.terminate();
            resolve();
          }, 2_000).unref();
        }),
    ),
  );
  return {
    settings: {
      connections,
      window,
      frameSize,
      users,
      seconds,
      ...(rate === undefined ? {} : { rate }),
    },
    throughput: Math.round(ackedInWindow / Math.min(seconds, ranSeconds)),
    sent,
    acked,
    errors,
    latency: histogram.percentiles(),
  };
};
