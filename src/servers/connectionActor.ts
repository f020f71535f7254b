import type { ErrorCode } from '../core/errors.ts';
import type { Purchase } from '../core/purchase.ts';
import { decodeFrameText, type DecodeFrameConfig } from '../streams/operators/decodeFrame.ts';
import type { PurchaseResult, Submission } from '../streams/types.ts';
import type { AdmissionTicket } from './admission.ts';

/** Where a purchase's reply goes: its connection, its frame, its place in the frame. */
export interface ReplyRef {
  readonly actor: ConnectionActor;
  readonly frame: FrameSlot;
  readonly index: number;
  readonly purchaseId: string;
}

/** A frame waiting for the replies of its purchases. */
export interface FrameSlot {
  readonly array: boolean;
  readonly results: (PurchaseResult | undefined)[];
  remaining: number;
  /** When the frame was read (`performance.now()`), for the ack latency. */
  readonly readAt: number;
  /** Acks among its results so far. */
  acks: number;
}

/**
 * What a connection reports as it goes, for metrics. Called once per frame (or per
 * refusal), never once per purchase.
 */
export interface ConnectionObserver {
  /** Valid purchases of one frame entered the pipeline. */
  received(count: number): void;
  /** The connection refused purchases or a frame itself: bad input, overload, a drain. */
  refused(code: ErrorCode, count: number): void;
  /** A reply holding acks was handed to the socket, for a frame read at `readAt`. */
  replied(readAt: number): void;
}

/** An observer that ignores everything. */
export const ignoreConnection: ConnectionObserver = {
  received: () => undefined,
  refused: () => undefined,
  replied: () => undefined,
};

/** The per-socket actor: decodes frames, submits purchases, sends replies in order. */
export interface ConnectionActor {
  /** A frame arrived from the client. */
  receive(data: string | null): void;
  /** The pipeline answered one of this connection's purchases. */
  deliver(ref: ReplyRef, result: PurchaseResult): void;
  /** Frames still waiting for replies. */
  readonly pendingFrames: number;
  /** Purchases this connection submitted to the pipeline so far. */
  readonly received: number;
  close(): void;
}

/** What one connection actor needs from its server. */
export interface ConnectionActorDeps {
  readonly decode: DecodeFrameConfig;
  readonly ticket: AdmissionTicket;
  readonly submit: (submission: Submission<ReplyRef>) => void;
  /** False once the server drains: purchases still arriving are refused, not queued. */
  readonly isAccepting: () => boolean;
  readonly send: (text: string) => void;
  /** Told what the connection received, refused and answered; nothing by default. */
  readonly observer?: ConnectionObserver;
}

const render = (slot: FrameSlot): string => {
  if (!slot.array) return JSON.stringify(slot.results[0]);
  let acked = 0;
  for (const result of slot.results) if (result?.status === 'ack') acked += 1;
  return JSON.stringify({
    status: 'batch',
    acked,
    failed: slot.results.length - acked,
    results: slot.results,
  });
};

const overloaded: PurchaseResult = {
  status: 'error',
  code: 'overloaded',
  message: 'the server is overloaded; retry later',
};

const shuttingDown: PurchaseResult = {
  status: 'error',
  code: 'unavailable',
  message: 'the server is shutting down; retry on a new connection',
};

/**
 * Creates the actor of one WebSocket connection. It owns the connection's state — the
 * frames awaiting replies, in arrival order — and talks to the pipeline only through
 * `submit` and `deliver`. Replies leave in the order their frames arrived, whatever order
 * the pipeline answers in.
 */
export const createConnectionActor = (deps: ConnectionActorDeps): ConnectionActor => {
  const queue: FrameSlot[] = [];
  const observer = deps.observer ?? ignoreConnection;
  let closed = false;
  let received = 0;

  const flush = () => {
    while (queue.length > 0 && queue[0]?.remaining === 0) {
      const slot = queue.shift();
      if (slot === undefined || closed) continue;
      deps.send(render(slot));
      if (slot.acks > 0) observer.replied(slot.readAt);
    }
  };

  /** Reports the errors a frame's decoding found, one call per run of the same code. */
  const countInvalid = (results: readonly (PurchaseResult | undefined)[]) => {
    let code: ErrorCode | undefined;
    let count = 0;
    for (const result of results) {
      if (result?.status !== 'error') continue;
      if (result.code === code) {
        count += 1;
        continue;
      }
      if (code !== undefined) observer.refused(code, count);
      code = result.code;
      count = 1;
    }
    if (code !== undefined) observer.refused(code, count);
  };

  const actor: ConnectionActor = {
    get pendingFrames() {
      return queue.length;
    },
    get received() {
      return received;
    },
    receive(data) {
      if (closed) return;
      const readAt = performance.now();
      if (data === null) {
        observer.refused('unsupported_frame', 1);
        queue.push({
          array: false,
          remaining: 0,
          readAt,
          acks: 0,
          results: [
            {
              status: 'error',
              code: 'unsupported_frame',
              message: 'binary frames are not supported; send JSON text frames',
            },
          ],
        });
        return flush();
      }
      const decoded = decodeFrameText(data, deps.decode);
      if (decoded.frameError !== undefined) {
        if (decoded.frameError.status === 'error') observer.refused(decoded.frameError.code, 1);
        queue.push({ array: false, remaining: 0, readAt, acks: 0, results: [decoded.frameError] });
        return flush();
      }
      const valid: Array<{ index: number; purchase: Purchase }> = [];
      const results = decoded.items.map((item, index) => {
        if (item.ok) valid.push({ index, purchase: item.purchase });
        return item.ok ? undefined : item.error;
      });
      const refusal = !deps.isAccepting()
        ? shuttingDown
        : deps.ticket.wouldOverflow(valid.length)
          ? overloaded
          : undefined;
      const slot: FrameSlot = { array: decoded.array, results, remaining: 0, readAt, acks: 0 };
      queue.push(slot);
      if (valid.length < results.length) countInvalid(results);
      if (refusal !== undefined) {
        if (refusal.status === 'error' && valid.length > 0) {
          observer.refused(refusal.code, valid.length);
        }
        for (const { index, purchase } of valid) results[index] = { ...refusal, id: purchase.id };
        return flush();
      }
      slot.remaining = valid.length;
      received += valid.length;
      if (valid.length > 0) observer.received(valid.length);
      deps.ticket.admit(valid.length);
      for (const { index, purchase } of valid) {
        deps.submit({ ref: { actor, frame: slot, index, purchaseId: purchase.id }, purchase });
      }
      flush();
    },
    deliver(ref, result) {
      ref.frame.results[ref.index] = result;
      ref.frame.remaining -= 1;
      if (result.status === 'ack') ref.frame.acks += 1;
      // After close the ticket already returned this connection's whole budget.
      if (!closed) deps.ticket.release(1);
      flush();
    },
    close() {
      closed = true;
      deps.ticket.close();
    },
  };
  return actor;
};
