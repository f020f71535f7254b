// A WebSocket client for the ingest tests: sends frames, awaits replies in order.
import { WebSocket } from 'ws';

/** A reply frame as the server sends it. */
export type Reply = Record<string, unknown> & { status: string };

/** A connected test client. */
export interface TestClient {
  readonly socket: WebSocket;
  send(frame: unknown): void;
  /** The next reply not yet taken. */
  next(timeoutMs?: number): Promise<Reply>;
  /** Replies received and not yet taken. */
  readonly waiting: number;
  /** The next `count` replies. */
  take(count: number, timeoutMs?: number): Promise<Reply[]>;
  /** Resolves with the close code once the server closes the socket. */
  readonly closed: Promise<number>;
  close(): Promise<void>;
}

/** Opens a client on `url`; `autoPong: false` makes a peer that never answers pings. */
export const connectClient = async (
  url: string,
  options: { autoPong?: boolean } = {},
): Promise<TestClient> => {
  const socket = new WebSocket(url, { autoPong: options.autoPong ?? true });
  const replies: Reply[] = [];
  const waiters: Array<(reply: Reply) => void> = [];
  socket.on('message', (data) => {
    const reply = JSON.parse((data as Buffer).toString('utf8')) as Reply;
    const waiter = waiters.shift();
    if (waiter === undefined) replies.push(reply);
    else waiter(reply);
  });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const next = (timeoutMs = 30_000) =>
    new Promise<Reply>((resolve, reject) => {
      const ready = replies.shift();
      if (ready !== undefined) return resolve(ready);
      const timer = setTimeout(() => reject(new Error('no reply in time')), timeoutMs);
      waiters.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  return {
    socket,
    closed,
    get waiting() {
      return replies.length;
    },
    send: (frame) => socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    next,
    take: async (count, timeoutMs) => {
      const taken: Reply[] = [];
      for (let i = 0; i < count; i += 1) taken.push(await next(timeoutMs));
      return taken;
    },
    close: async () => {
      if (socket.readyState === socket.CLOSED) return;
      socket.close();
      await closed;
    },
  };
};

/** The replies to each purchase, array frames opened up. */
export const flatten = (replies: readonly Reply[]): Reply[] =>
  replies.flatMap((reply) => (reply.status === 'batch' ? (reply.results as Reply[]) : [reply]));
