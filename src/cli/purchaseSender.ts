// The client side of docs/protocol.md for `spendstream send`: one purchase per frame over
// one connection, a bounded window of them unanswered, replies matched to frames by
// position (the ingest answers in frame order), retries with the same id.
import { WebSocket } from 'ws';
import type { Outgoing, Reply } from './purchaseInput.ts';

/** How {@link sendPurchases} talks to the ingest. */
export interface SendOptions {
  /** The ingest's WebSocket URL. */
  readonly url: string;
  /** Most purchases read from the input and not yet handed on with their reply. */
  readonly window: number;
  /**
   * Resends of one purchase answered `unavailable` or `overloaded`, and reconnections in a
   * row without a reply in between, before giving up.
   */
  readonly retries: number;
  /** First wait before a resend or a reconnection; doubles each time, up to 5 s. */
  readonly retryDelayMs: number;
  /** A connection with purchases in flight and no reply for this long is dropped and redialled. */
  readonly replyTimeoutMs: number;
  /**
   * Frames longer than this (UTF-8 bytes) are answered `too_large` without being sent: the
   * ingest would close the connection on them (`INGEST_MAX_FRAME_BYTES`). No check when absent.
   */
  readonly maxFrameBytes?: number;
}

/** The connection could not be kept: the replies before it are final, the rest were made up. */
export class ConnectionLostError extends Error {
  override readonly name = 'ConnectionLostError';
}

const RETRYABLE = new Set(['unavailable', 'overloaded']);
const MAX_DELAY_MS = 5_000;
/** The close code for a message too big to take: the ingest's answer to a frame over its limit. */
const MESSAGE_TOO_BIG = 1009;

/** The reply to a purchase whose frame is over the ingest's limit. */
const tooLarge = (entry: Entry, message: string): Reply => ({
  status: 'error',
  code: 'too_large',
  ...(entry.id === undefined ? {} : { id: entry.id }),
  message,
});

interface Entry {
  readonly frame: string;
  readonly id: string | undefined;
  /** Resends after a retryable reply. */
  retries: number;
  /** Whether it was ever sent, to tell "no reply" from "not sent" when giving up. */
  sent: boolean;
  reply?: Reply;
}

/**
 * Sends the purchases and yields one reply per input item, in input order. A purchase
 * answered `unavailable` or `overloaded` is resent with the same id after a backoff; a
 * connection that closes or stops answering is redialled and its unanswered purchases
 * resent (the ingest acks a resent id as a duplicate, never stores it twice). Memory stays
 * bounded: at most `window` items are read ahead of the consumer. When the connection
 * cannot be restored, every purchase still waiting gets a made-up `unavailable` reply with
 * its id, and the iteration then throws a {@link ConnectionLostError}. A frame the ingest
 * refuses as too big (close code 1009, no reply) is answered `too_large` and not resent;
 * the purchases after it go on over a new connection.
 */
export async function* sendPurchases(
  items: AsyncIterable<Outgoing> | Iterable<Outgoing>,
  options: SendOptions,
): AsyncGenerator<Reply, void, undefined> {
  /** Read from the input, not yet yielded: bounded by `options.window`. */
  const pending: Entry[] = [];
  let toSend: Entry[] = [];
  let inFlight: Entry[] = [];
  let socket: WebSocket | undefined;
  let connecting = false;
  let failuresInARow = 0;
  /** Why the last connection failed or closed, for the message when giving up. */
  let problem: string | undefined;
  let failure: Error | undefined;
  let inputDone = false;
  let inputError: unknown;
  let stopped = false;
  let replyTimer: NodeJS.Timeout | undefined;
  const timers = new Set<NodeJS.Timeout>();

  let waiters: Array<() => void> = [];
  const changed = () => {
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  const until = async (condition: () => boolean) => {
    while (!condition()) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  const later = (ms: number, action: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      action();
    }, ms);
    timers.add(timer);
  };
  const backoff = (attempt: number) =>
    Math.min(options.retryDelayMs * 2 ** Math.max(0, attempt - 1), MAX_DELAY_MS);

  const giveUp = (reason: string) => {
    failure = new ConnectionLostError(reason);
    changed();
  };

  const armReplyTimer = () => {
    clearTimeout(replyTimer);
    replyTimer = undefined;
    if (inFlight.length === 0 || socket === undefined) return;
    const current = socket;
    replyTimer = setTimeout(() => {
      problem = `no reply within ${options.replyTimeoutMs} ms`;
      current.terminate();
    }, options.replyTimeoutMs);
  };

  const onReply = (data: unknown) => {
    const entry = inFlight.shift();
    if (entry === undefined) return; // nothing was asked: not a reply of ours
    failuresInARow = 0;
    let reply: Reply;
    try {
      reply = JSON.parse(String(data)) as Reply;
    } catch {
      reply = {
        status: 'error',
        code: 'internal',
        message: 'the ingest sent a reply that is not JSON',
      };
    }
    armReplyTimer();
    const code = reply['code'];
    if (reply.status === 'error' && typeof code === 'string' && RETRYABLE.has(code)) {
      if (entry.retries < options.retries) {
        entry.retries += 1;
        later(backoff(entry.retries), () => {
          toSend.push(entry);
          pump();
        });
        return;
      }
    }
    entry.reply = reply;
    changed();
  };

  // A close with 1009 answers a frame over the ingest's limit; the ingest read no further,
  // so that frame is unanswered. The largest unanswered frame is at least as large, so over
  // the limit too: refusing it is right even when the limit is unknown, and each such close
  // settles one purchase.
  const refuseLargestInFlight = (): boolean => {
    let largest: Entry | undefined;
    let largestBytes = -1;
    for (const entry of inFlight) {
      const bytes = Buffer.byteLength(entry.frame);
      if (bytes > largestBytes) [largest, largestBytes] = [entry, bytes];
    }
    if (largest === undefined) return false;
    const refused = largest;
    inFlight = inFlight.filter((entry) => entry !== refused);
    refused.reply = tooLarge(
      refused,
      `the ingest closed the connection on its ${largestBytes}-byte frame as too large (code 1009); not stored`,
    );
    changed();
    return true;
  };

  const onClose = (closed: WebSocket, code: number) => {
    if (socket !== closed) return;
    socket = undefined;
    armReplyTimer();
    const refused = code === MESSAGE_TOO_BIG && refuseLargestInFlight();
    // Unanswered purchases may or may not be stored: resent with their ids, they are
    // acked either way, and first, to keep their order.
    toSend = [...inFlight, ...toSend];
    inFlight = [];
    const reason = problem ?? `the ingest closed the connection (code ${code})`;
    problem = undefined;
    if (stopped || failure !== undefined || toSend.length === 0) return;
    if (refused) {
      // Not a failure of the connection: the ingest answered, in its way.
      failuresInARow = 0;
      return pump();
    }
    // Only a close that cost replies counts; an idle connection is simply redialled when
    // the next purchase comes.
    failuresInARow += 1;
    if (failuresInARow > options.retries) return giveUp(reason);
    later(backoff(failuresInARow), pump);
  };

  const connect = () => {
    connecting = true;
    let next: WebSocket;
    try {
      next = new WebSocket(options.url);
    } catch (error) {
      connecting = false;
      return giveUp(`cannot connect to ${options.url}: ${String(error)}`);
    }
    next.on('message', onReply);
    next.once('open', () => {
      connecting = false;
      problem = undefined;
      if (stopped) return next.close();
      socket = next;
      pump();
    });
    next.on('error', (error: Error) => {
      problem = error.message;
    });
    next.once('close', (code) => {
      if (connecting && socket === undefined) {
        // Never opened.
        connecting = false;
        if (stopped || failure !== undefined) return;
        failuresInARow += 1;
        if (failuresInARow > options.retries) {
          return giveUp(`cannot connect to ${options.url}: ${problem ?? `closed (code ${code})`}`);
        }
        return later(backoff(failuresInARow), pump);
      }
      onClose(next, code);
    });
  };

  function pump(): void {
    if (stopped || failure !== undefined || toSend.length === 0) return;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) {
      if (!connecting && socket === undefined) connect();
      return;
    }
    const wasIdle = inFlight.length === 0;
    for (const entry of toSend) {
      entry.sent = true;
      inFlight.push(entry);
      socket.send(entry.frame);
    }
    toSend = [];
    if (wasIdle) armReplyTimer();
  }

  const intake = async () => {
    try {
      for await (const item of items) {
        await until(() => pending.length < options.window || failure !== undefined || stopped);
        if (failure !== undefined || stopped) return;
        if ('reply' in item) {
          pending.push({ frame: '', id: undefined, retries: 0, sent: false, reply: item.reply });
          changed();
          continue;
        }
        const entry: Entry = { frame: item.frame, id: item.id, retries: 0, sent: false };
        pending.push(entry);
        const limit = options.maxFrameBytes;
        const bytes = limit === undefined ? 0 : Buffer.byteLength(item.frame);
        if (limit !== undefined && bytes > limit) {
          entry.reply = tooLarge(
            entry,
            `its frame is ${bytes} bytes, more than the ${limit} a frame may hold; not sent`,
          );
          changed();
          continue;
        }
        toSend.push(entry);
        pump();
      }
    } catch (error) {
      inputError = error;
    } finally {
      inputDone = true;
      changed();
    }
  };
  const reading = intake();

  try {
    for (;;) {
      await until(
        () =>
          pending[0]?.reply !== undefined ||
          failure !== undefined ||
          (inputDone && pending.length === 0),
      );
      const head = pending[0];
      if (head?.reply !== undefined) {
        pending.shift();
        changed();
        yield head.reply;
        continue;
      }
      if (failure !== undefined) {
        const reason = failure.message;
        for (const entry of pending.splice(0)) {
          yield (
            entry.reply ?? {
              status: 'error',
              code: 'unavailable',
              ...(entry.id === undefined ? {} : { id: entry.id }),
              message: `${entry.sent ? 'no reply' : 'not sent'} (${reason}); resend it with the same id`,
            }
          );
        }
        throw failure;
      }
      if (inputError !== undefined) {
        throw inputError instanceof Error
          ? inputError
          : new Error('reading the purchases failed', { cause: inputError });
      }
      return;
    }
  } finally {
    stopped = true;
    changed();
    clearTimeout(replyTimer);
    for (const timer of timers) clearTimeout(timer);
    socket?.close();
    // The intake stops at its next item (a stdin that sends none is the caller's to close)
    // and never rejects: its errors are in inputError.
    void reading;
  }
}
