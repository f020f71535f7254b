// Steady load for the fault scenarios: several WebSocket clients, each keeping a window of
// unacked purchases in mixed single and array frames, reconnecting whenever its connection
// closes, and recording the fate of every purchase it sent.
import { randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import { centsToDecimal } from '../../src/core/purchase.ts';
import { eventually } from '../harness/eventually.ts';

/** What became of a purchase's first send. */
export type Fate = 'pending' | 'acked' | 'error' | 'noReply';

/** One purchase the load sent, with everything the server told about it. */
export interface SentPurchase {
  readonly id: string;
  readonly userId: string;
  readonly cents: number;
  /** As it went on the wire: a JSON number or a decimal string. */
  readonly amount: number | string;
  /** The first send's outcome, during the load. */
  firstFate: Fate;
  /** The error code of the first send, when it was an error. */
  firstCode: string | undefined;
  /** Acked at least once (during the load or a resend). */
  acked: boolean;
  /** Acks saying `duplicate: false`: more than one means it was stored twice. */
  newAcks: number;
  duplicateAcks: number;
  /** Times sent, resends included. */
  sends: number;
  /** The last error code received for it. */
  lastCode: string | undefined;
}

/** Settings of a load. */
export interface LoadOptions {
  readonly url: string;
  /** When given, connections go to these in turn instead (several ingest instances). */
  readonly urls?: readonly string[];
  readonly clients: number;
  /** Unacked purchases each client keeps in flight at most. */
  readonly window: number;
  /** Purchases per second each client sends at most. */
  readonly ratePerClient: number;
  /** Purchases go to users `user-0` … `user-<users-1>`. */
  readonly users: number;
}

/** What the load saw, for the scenario's figures. */
export interface LoadSummary {
  readonly sent: number;
  /** Purchases whose first send was acked. */
  readonly acked: number;
  /** Purchases whose first send got an error or no reply (its connection closed first). */
  readonly refused: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly noReply: number;
  /**
   * Purchases whose first send got neither a reply nor a close of their connection by the
   * time the load stopped (and waited for them): must be empty.
   */
  readonly unanswered: readonly string[];
  readonly frames: number;
  readonly connects: number;
  /** Connection attempts that failed (the ingest was down). */
  readonly connectFailures: number;
  /** Closes of open connections, by close code (1006: dropped without a close frame). */
  readonly closesByCode: Readonly<Record<string, number>>;
  /** Replies that did not match their frame (wrong id, shape, count): must be empty. */
  readonly protocolErrors: readonly string[];
}

/** What a resend pass did. */
export interface ResendSummary {
  readonly rounds: number;
  /** Distinct purchases resent. */
  readonly resent: number;
  /** Purchases still not acked when the resend gave up: must be empty. */
  readonly stillUnacked: readonly string[];
  /** Purchases refused for good (a code that says do not retry): must be empty. */
  readonly refusedForGood: readonly string[];
}

/** A running load. */
export interface Load {
  readonly purchases: ReadonlyMap<string, SentPurchase>;
  /** Purchases acked during the load so far. */
  readonly ackedCount: number;
  /** Waits until at least `count` purchases were acked during the load. */
  waitForAcks(count: number, timeoutMs: number): Promise<void>;
  /** Remembers `at` as the moment a fault healed (see {@link firstAckSinceHealed}). */
  markHealed(at?: number): void;
  /** Milliseconds from the healed mark to the first ack received after it. */
  firstAckSinceHealed(timeoutMs: number): Promise<number>;
  /** Stops sending, waits (bounded) for the replies still due, closes the connections. */
  stop(timeoutMs?: number): Promise<void>;
  /**
   * Sends one array frame of `count` purchases for `userId` on a connection of its own,
   * counted with the rest; resolves once it is sent.
   */
  sendFrame(userId: string, count: number): Promise<void>;
  /** Re-sends every unacked purchase, same id and contents, until each is acked (bounded). */
  resendUnacked(deadlineMs: number): Promise<ResendSummary>;
  summary(): LoadSummary;
}

/** Codes that say: do not retry unchanged. The load never earns them. */
const FINAL_CODES = new Set([
  'invalid_json',
  'invalid_purchase',
  'too_large',
  'unsupported_frame',
  'id_conflict',
]);

interface Frame {
  readonly array: boolean;
  readonly purchases: readonly SentPurchase[];
}

interface Connection {
  readonly socket: WebSocket;
  /** Frames sent on this connection and not answered, oldest first. */
  readonly pending: Frame[];
  outstanding: number;
  open: boolean;
  opened: boolean;
  readonly closed: Promise<number>;
}

type Reply = Record<string, unknown>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls at 20 ms: acks and replies come thousands a second. */
const POLL_MS = 20;

/** Starts the load: `clients` clients connect to `url` and send until stopped. */
export const startLoad = (options: LoadOptions): Load => {
  const tag = randomUUID().slice(0, 8);
  const purchases = new Map<string, SentPurchase>();
  const errorsByCode: Record<string, number> = {};
  const closesByCode: Record<string, number> = {};
  const protocolErrors: string[] = [];
  const connections = new Set<Connection>();
  const unansweredAtStop: string[] = [];
  let ackedCount = 0;
  let frames = 0;
  let connects = 0;
  let connectFailures = 0;
  let running = true;
  let healedAt: number | undefined;
  let firstAckAfterHeal: number | undefined;

  const protocolError = (message: string) => {
    if (protocolErrors.length < 100) protocolErrors.push(message);
  };

  /** Records the server's answer about one purchase. */
  const settle = (purchase: SentPurchase, result: Reply | undefined, resend: boolean) => {
    if (result === undefined || typeof result['status'] !== 'string') {
      protocolError(`no result for ${purchase.id}: ${JSON.stringify(result)}`);
      return;
    }
    // Frame-level errors carry no id; every other answer names its purchase.
    const code = typeof result['code'] === 'string' ? result['code'] : undefined;
    const frameLevel = code === 'invalid_json' || code === 'too_large';
    if (!frameLevel && result['id'] !== purchase.id) {
      protocolError(`reply for ${String(result['id'])} where ${purchase.id} was due`);
    }
    if (result['status'] === 'ack') {
      if (result['duplicate'] === true) purchase.duplicateAcks += 1;
      else purchase.newAcks += 1;
      purchase.acked = true;
      if (!resend && purchase.firstFate === 'pending') {
        purchase.firstFate = 'acked';
        ackedCount += 1;
        if (healedAt !== undefined && firstAckAfterHeal === undefined) {
          const now = Date.now();
          if (now >= healedAt) firstAckAfterHeal = now;
        }
      }
    } else if (result['status'] === 'error') {
      purchase.lastCode = code ?? 'unknown';
      if (!resend && purchase.firstFate === 'pending') {
        purchase.firstFate = 'error';
        purchase.firstCode = purchase.lastCode;
        errorsByCode[purchase.lastCode] = (errorsByCode[purchase.lastCode] ?? 0) + 1;
      }
    } else {
      protocolError(`unexpected reply status for ${purchase.id}: ${JSON.stringify(result)}`);
    }
  };

  const urls = options.urls ?? [options.url];
  let opened = 0;
  /** A purchase about to be sent for the first time, counted from now on. */
  const track = (
    id: string,
    userId: string,
    cents: number,
    amount: number | string,
  ): SentPurchase => {
    const purchase: SentPurchase = {
      id,
      userId,
      cents,
      amount,
      firstFate: 'pending',
      firstCode: undefined,
      acked: false,
      newAcks: 0,
      duplicateAcks: 0,
      sends: 0,
      lastCode: undefined,
    };
    purchases.set(purchase.id, purchase);
    return purchase;
  };

  /** Opens a connection whose replies are matched to its frames in order. */
  const open = (resend: boolean): Connection => {
    const url = urls[opened % urls.length] ?? options.url;
    opened += 1;
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const connection: Connection = {
      socket,
      pending: [],
      outstanding: 0,
      open: false,
      opened: false,
      closed: new Promise((resolve) =>
        socket.once('close', (code) => {
          connection.open = false;
          connections.delete(connection);
          // Closes of connections that were open; failed connection attempts aside.
          if (connection.opened) closesByCode[code] = (closesByCode[code] ?? 0) + 1;
          else connectFailures += 1;
          // Frames left unanswered: their purchases got no reply from this connection.
          for (const frame of connection.pending.splice(0)) {
            for (const purchase of frame.purchases) {
              if (!resend && purchase.firstFate === 'pending') purchase.firstFate = 'noReply';
            }
          }
          connection.outstanding = 0;
          resolve(code);
        }),
      ),
    };
    connections.add(connection);
    socket.on('open', () => {
      connection.open = true;
      connection.opened = true;
      connects += 1;
    });
    // A refused or reset connection: 'close' follows and decides what happens next.
    socket.on('error', () => undefined);
    socket.on('message', (data: RawData) => {
      const frame = connection.pending.shift();
      const text = (data as Buffer).toString('utf8');
      let reply: Reply;
      try {
        reply = JSON.parse(text) as Reply;
      } catch {
        protocolError(`unreadable reply ${text.slice(0, 200)}`);
        return;
      }
      if (frame === undefined) {
        protocolError(`a reply with no frame waiting: ${JSON.stringify(reply)}`);
        return;
      }
      connection.outstanding -= frame.purchases.length;
      if (!frame.array) return settle(frame.purchases[0], reply, resend);
      if (reply['status'] !== 'batch') {
        for (const purchase of frame.purchases) settle(purchase, reply, resend);
        return;
      }
      const results = Array.isArray(reply['results']) ? (reply['results'] as Reply[]) : [];
      if (results.length !== frame.purchases.length) {
        protocolError(`a batch reply with ${results.length} of ${frame.purchases.length} results`);
      }
      frame.purchases.forEach((purchase, i) => settle(purchase, results[i], resend));
    });
    return connection;
  };

  const sendFrame = (connection: Connection, frame: Frame) => {
    connection.pending.push(frame);
    connection.outstanding += frame.purchases.length;
    frames += 1;
    for (const purchase of frame.purchases) purchase.sends += 1;
    const body = frame.purchases.map((p) => ({ id: p.id, user_id: p.userId, amount: p.amount }));
    connection.socket.send(JSON.stringify(frame.array ? body : body[0]));
  };

  // One client: a connection at a time, reconnecting while the load runs; sends at most
  // `ratePerClient` purchases a second and keeps at most `window` unacked.
  const client = (index: number) => {
    let seq = 0;
    let frameNo = 0;
    let credit = 0;
    let last = Date.now();
    let backoff = 50;
    let connection: Connection | undefined;
    const next = (): SentPurchase => {
      const n = seq;
      seq += 1;
      const cents = 1 + ((n * 7_919 + index * 104_729) % 100_000);
      // Numbers and strings both, as clients send them; the cents are the same.
      const amount = n % 3 === 0 ? Number(centsToDecimal(cents)) : centsToDecimal(cents);
      return track(
        `${tag}-${index}-${n}`,
        `user-${(n * 31 + index) % options.users}`,
        cents,
        amount,
      );
    };
    const connect = () => {
      if (!running) return;
      connection = open(false);
      const current = connection;
      current.socket.once('open', () => {
        backoff = 50;
      });
      void current.closed.then(() => {
        if (connection === current) connection = undefined;
        if (!running) return;
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 1_000);
      });
    };
    const tick = () => {
      const now = Date.now();
      credit = Math.min(credit + ((now - last) * options.ratePerClient) / 1_000, options.window);
      last = now;
      const current = connection;
      if (!running || current === undefined || !current.open) return;
      while (credit >= 1 && current.outstanding < options.window) {
        frameNo += 1;
        const room = Math.min(options.window - current.outstanding, Math.floor(credit));
        // Mostly single purchases; every fourth frame an array of 1 to 20.
        const size = frameNo % 4 === 0 ? Math.min(room, 1 + (frameNo % 20)) : 1;
        const array = frameNo % 4 === 0;
        sendFrame(current, { array, purchases: Array.from({ length: size }, next) });
        credit -= size;
      }
    };
    connect();
    return setInterval(tick, 10);
  };

  const timers = Array.from({ length: options.clients }, (_, i) => client(i));

  const closeAll = async (timeoutMs: number) => {
    await Promise.all(
      [...connections].map(async (connection) => {
        if (connection.socket.readyState === WebSocket.CLOSED) return;
        connection.socket.close(1000);
        const timer = setTimeout(() => connection.socket.terminate(), timeoutMs);
        await connection.closed;
        clearTimeout(timer);
      }),
    );
  };

  let extraFrames = 0;
  const load: Load = {
    sendFrame: async (userId, count) => {
      extraFrames += 1;
      const frame = Array.from({ length: count }, (_, n): SentPurchase => {
        const cents = 100 + n;
        return track(`${tag}-frame-${extraFrames}-${n}`, userId, cents, centsToDecimal(cents));
      });
      const connection = open(false);
      await new Promise<void>((resolve, reject) => {
        connection.socket.once('open', () => resolve());
        connection.socket.once('error', reject);
      });
      sendFrame(connection, { array: true, purchases: frame });
    },
    purchases,
    get ackedCount() {
      return ackedCount;
    },
    waitForAcks: async (count, timeoutMs) => {
      await eventually(`${count} acks`, () => ackedCount >= count, {
        timeoutMs,
        intervalMs: POLL_MS,
      });
    },
    markHealed: (at = Date.now()) => {
      healedAt = at;
      firstAckAfterHeal = undefined;
    },
    firstAckSinceHealed: async (timeoutMs) => {
      await eventually('an ack after the fault healed', () => firstAckAfterHeal !== undefined, {
        timeoutMs,
        intervalMs: POLL_MS,
      });
      return (firstAckAfterHeal ?? 0) - (healedAt ?? 0);
    },
    stop: async (timeoutMs = 30_000) => {
      if (running) {
        running = false;
        for (const timer of timers) clearInterval(timer);
        // Replies still due arrive, or their connection closes.
        await eventually(
          'the replies due',
          () => [...connections].every((c) => !c.open || c.pending.length === 0),
          { timeoutMs, intervalMs: POLL_MS, onTimeout: 'resolve' },
        );
        // Still unanswered on an open connection: the server neither replied nor closed.
        for (const connection of connections) {
          if (!connection.open) continue;
          for (const frame of connection.pending) {
            for (const purchase of frame.purchases) unansweredAtStop.push(purchase.id);
          }
        }
      }
      await closeAll(5_000);
    },
    resendUnacked: async (deadlineMs) => {
      const deadline = Date.now() + deadlineMs;
      const resent = new Set<string>();
      let rounds = 0;
      let delay = 250;
      const retriable = (p: SentPurchase) =>
        !p.acked && (p.lastCode === undefined || !FINAL_CODES.has(p.lastCode));
      for (;;) {
        const todo = [...purchases.values()].filter(retriable);
        if (todo.length === 0 || Date.now() > deadline) break;
        rounds += 1;
        const connection = open(true);
        const opened = await Promise.race([
          new Promise<boolean>((resolve) => connection.socket.once('open', () => resolve(true))),
          connection.closed.then(() => false),
        ]);
        if (opened) {
          // Array frames of up to 100, at most 1,000 purchases unanswered at once.
          for (let i = 0; i < todo.length && connection.open; i += 100) {
            await eventually(
              'room to resend',
              () => !connection.open || connection.outstanding < 1_000,
              {
                timeoutMs: Math.max(1, deadline - Date.now()),
                intervalMs: POLL_MS,
                onTimeout: 'resolve',
              },
            );
            if (!connection.open) break;
            const chunk = todo.slice(i, i + 100);
            for (const purchase of chunk) resent.add(purchase.id);
            sendFrame(connection, { array: true, purchases: chunk });
          }
          await eventually(
            'the resend replies',
            () => !connection.open || connection.pending.length === 0,
            {
              timeoutMs: Math.max(1, deadline - Date.now()),
              intervalMs: POLL_MS,
              onTimeout: 'resolve',
            },
          );
        }
        connection.socket.close(1000);
        await connection.closed;
        if (todo.some(retriable)) {
          await sleep(delay);
          delay = Math.min(delay * 2, 2_000);
        }
      }
      const left = [...purchases.values()].filter((p) => !p.acked);
      return {
        rounds,
        resent: resent.size,
        stillUnacked: left.filter(retriable).map((p) => `${p.id} (${p.lastCode ?? 'no reply'})`),
        refusedForGood: left.filter((p) => !retriable(p)).map((p) => `${p.id} (${p.lastCode})`),
      };
    },
    summary: () => {
      let noReply = 0;
      const unanswered = new Set(unansweredAtStop);
      for (const purchase of purchases.values()) {
        if (purchase.firstFate === 'noReply' && !unanswered.has(purchase.id)) noReply += 1;
        if (purchase.firstFate === 'pending') unanswered.add(purchase.id);
      }
      return {
        sent: purchases.size,
        acked: ackedCount,
        refused: purchases.size - ackedCount - unanswered.size,
        errorsByCode: { ...errorsByCode },
        noReply,
        unanswered: [...unanswered],
        frames,
        connects,
        connectFailures,
        closesByCode: { ...closesByCode },
        protocolErrors: [...protocolErrors],
      };
    },
  };
  return load;
};
