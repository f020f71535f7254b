// The sender against scripted WebSocket servers: the cases a real ingest produces only
// under faults (unavailable replies, dropped connections, silence) made to order.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Outgoing, Reply } from './purchaseInput.ts';
import { ConnectionLostError, sendPurchases, type SendOptions } from './purchaseSender.ts';
import { eventually } from '../../test/harness/eventually.ts';

/**
 * A server whose every connection runs `script`; it records the frames each one got. A
 * frame over `maxPayload` closes its connection with 1009, as the ingest does.
 */
const startServer = async (
  script: (socket: WebSocket, frame: string, connection: number) => void,
  { maxPayload }: { maxPayload?: number } = {},
) => {
  const server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    ...(maxPayload === undefined ? {} : { maxPayload }),
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const frames: string[][] = [];
  server.on('connection', (socket) => {
    const connection = frames.length;
    frames.push([]);
    // A frame over maxPayload: ws closes with 1009 and reports it here too.
    socket.on('error', () => undefined);
    socket.on('message', (data: Buffer) => {
      const frame = data.toString('utf8');
      frames[connection]?.push(frame);
      script(socket, frame, connection);
    });
  });
  servers.push(server);
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, frames };
};
const servers: WebSocketServer[] = [];
// A sender that loses track of a purchase waits for it forever: each case has a timeout.
after(() => {
  for (const server of servers) server.close();
});

const ack = (frame: string): Reply => ({
  status: 'ack',
  id: (JSON.parse(frame) as { id: string }).id,
  duplicate: false,
});

const purchase = (id: string): Outgoing & { frame: string } => ({
  frame: JSON.stringify({ id, user_id: 'u', amount: 1 }),
  id,
});

const options = (url: string, overrides: Partial<SendOptions> = {}): SendOptions => ({
  url,
  window: 10,
  retries: 3,
  retryDelayMs: 1,
  replyTimeoutMs: 5_000,
  ...overrides,
});

/** Every reply, and the error the iteration ended with, if any. */
const collect = async (iterable: AsyncIterable<Reply>) => {
  const replies: Reply[] = [];
  try {
    for await (const reply of iterable) replies.push(reply);
    return { replies, error: undefined };
  } catch (error) {
    return { replies, error };
  }
};

const ids = (count: number, prefix = 'p') =>
  Array.from({ length: count }, (_, i) => `${prefix}${i}`);

test(
  'replies come back in input order, with no more than the window unanswered',
  { timeout: 10_000 },
  async () => {
    let unanswered = 0;
    let mostUnanswered = 0;
    const queue: string[] = [];
    // Answers in frame order, as the ingest does, but in bursts at random moments.
    const { url } = await startServer((socket, frame) => {
      unanswered += 1;
      mostUnanswered = Math.max(mostUnanswered, unanswered);
      queue.push(frame);
      setTimeout(() => {
        for (const next of queue.splice(0)) {
          unanswered -= 1;
          socket.send(JSON.stringify(ack(next)));
        }
      }, Math.random() * 3);
    });
    const items: Outgoing[] = ids(300).map(purchase);
    // A line answered locally keeps its place among the others.
    items.splice(150, 0, { reply: { status: 'error', code: 'invalid_json', message: 'line 151' } });
    const { replies, error } = await collect(sendPurchases(items, options(url, { window: 7 })));

    assert.equal(error, undefined);
    assert.deepEqual(
      replies.map((reply) => reply['id'] ?? reply['code']),
      [...ids(150), 'invalid_json', ...ids(300).slice(150)],
    );
    assert.ok(mostUnanswered <= 7, `${mostUnanswered} unanswered at once`);
    assert.ok(mostUnanswered > 1, 'the window was used');
  },
);

test(
  'input is read no further ahead than the window while replies are awaited',
  { timeout: 10_000 },
  async () => {
    let answer = () => {};
    const { url, frames } = await startServer((socket, frame) => {
      const previous = answer;
      answer = () => {
        previous();
        socket.send(JSON.stringify(ack(frame)));
      };
    });
    let read = 0;
    async function* endless(): AsyncGenerator<Outgoing> {
      for (let i = 0; ; i += 1) {
        // A macrotask per item, so that an intake ignoring the window cannot starve the timers.
        await new Promise((resolve) => setImmediate(resolve));
        read += 1;
        yield purchase(`e${i}`);
      }
    }
    const replies = sendPurchases(endless(), options(url, { window: 5 }));
    const first = replies.next();
    // The window is full once the server holds its five frames. An intake ignoring it
    // would read on, an item per turn of the event loop: give it many turns to do so.
    await eventually('five purchases in the first frame', () => (frames[0]?.length ?? 0) >= 5, {
      intervalMs: 5,
    });
    for (let turn = 0; turn < 50; turn += 1) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(read <= 6, `${read} items read with none answered`);
    assert.equal(frames[0]?.length, 5, 'no more than the window sent');
    answer();
    assert.equal((await first).value?.['id'], 'e0');
    await replies.return(undefined);
  },
);

test(
  'an unavailable or overloaded reply is resent with the same id until acked',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer((socket, frame) => {
      const { id } = JSON.parse(frame) as { id: string };
      const seen = frames[0]?.filter((f) => f === frame).length ?? 0;
      const code = id === 'a' ? 'unavailable' : 'overloaded';
      socket.send(
        JSON.stringify(
          seen <= (id === 'a' ? 2 : 1)
            ? { status: 'error', code, id, message: 'later' }
            : ack(frame),
        ),
      );
    });
    const { replies, error } = await collect(
      sendPurchases([purchase('a'), purchase('b')], options(url)),
    );

    assert.equal(error, undefined);
    assert.deepEqual(replies, [ack(purchase('a').frame), ack(purchase('b').frame)]);
    const sent = frames[0] ?? [];
    assert.equal(sent.filter((f) => f === purchase('a').frame).length, 3);
    assert.equal(sent.filter((f) => f === purchase('b').frame).length, 2);
  },
);

test(
  'resends stop after --retries; the last reply is the one printed',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer((socket, frame) => {
      const { id } = JSON.parse(frame) as { id: string };
      socket.send(JSON.stringify({ status: 'error', code: 'unavailable', id, message: 'down' }));
    });
    const { replies, error } = await collect(
      sendPurchases([purchase('a')], options(url, { retries: 2 })),
    );
    assert.equal(error, undefined);
    assert.deepEqual(replies, [{ status: 'error', code: 'unavailable', id: 'a', message: 'down' }]);
    assert.equal(frames[0]?.length, 3, 'sent once, resent twice');
  },
);

test(
  'a dropped connection is redialled and its unanswered purchases resent, same ids, in order',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer((socket, frame, connection) => {
      // The first connection answers one purchase, then dies with the rest unanswered.
      if (connection === 0 && frames[0]?.length === 4) return socket.terminate();
      if (connection > 0 || frames[0]?.length === 1) socket.send(JSON.stringify(ack(frame)));
    });
    const { replies, error } = await collect(sendPurchases(ids(6).map(purchase), options(url)));

    assert.equal(error, undefined);
    assert.deepEqual(
      replies.map((reply) => reply['id']),
      ids(6),
    );
    const resent = (frames[1] ?? []).map((frame) => (JSON.parse(frame) as { id: string }).id);
    assert.deepEqual(resent.slice(0, 3), ['p1', 'p2', 'p3'], 'the unanswered ones, first');
    assert.deepEqual(new Set(resent), new Set(ids(6).slice(1)));
  },
);

test(
  'an ingest that cannot be reached: every purchase is answered unavailable with its id',
  { timeout: 10_000 },
  async () => {
    const { url } = await startServer(() => {});
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    const { replies, error } = await collect(
      sendPurchases([purchase('a'), purchase('b')], options(url, { retries: 1 })),
    );

    assert.ok(error instanceof ConnectionLostError);
    assert.match(error.message, /^cannot connect to ws:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.deepEqual(
      replies.map((reply) => [reply.status, reply['code'], reply['id']]),
      [
        ['error', 'unavailable', 'a'],
        ['error', 'unavailable', 'b'],
      ],
    );
    assert.match(String(replies[0]?.['message']), /^not sent .*resend it with the same id$/);
  },
);

test(
  'a server that stops answering is redialled, then given up on; answered replies stand',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer((socket, frame, connection) => {
      if (connection === 0 && frames[0]?.length === 1) socket.send(JSON.stringify(ack(frame)));
    });
    const { replies, error } = await collect(
      sendPurchases(
        [purchase('a'), purchase('b')],
        options(url, { retries: 1, replyTimeoutMs: 50 }),
      ),
    );

    assert.ok(error instanceof ConnectionLostError);
    assert.equal(error.message, 'no reply within 50 ms');
    assert.equal(frames.length, 2, 'redialled once');
    assert.deepEqual(frames[1], [purchase('b').frame], 'the unanswered purchase was resent');
    assert.deepEqual(replies[0], ack(purchase('a').frame));
    assert.equal(replies[1]?.['code'], 'unavailable');
    assert.match(String(replies[1]?.['message']), /^no reply \(no reply within 50 ms\)/);
  },
);

/** A purchase whose frame is about `bytes` long. */
const bulky = (id: string, bytes: number): Outgoing & { frame: string } => ({
  frame: JSON.stringify({ id, user_id: 'u'.repeat(bytes), amount: 1 }),
  id,
});

test(
  'a frame the server closes the connection on with 1009 is answered too_large; the rest go on',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer(
      (socket, frame) => socket.send(JSON.stringify(ack(frame))),
      { maxPayload: 200 },
    );
    const items = [purchase('p0'), bulky('big', 300), purchase('p2'), purchase('p3')];
    const { replies, error } = await collect(sendPurchases(items, options(url, { retries: 2 })));

    assert.equal(error, undefined);
    assert.deepEqual(
      replies.map((reply) => [reply.status, reply['id']]),
      [
        ['ack', 'p0'],
        ['error', 'big'],
        ['ack', 'p2'],
        ['ack', 'p3'],
      ],
    );
    assert.equal(replies[1]?.['code'], 'too_large');
    assert.match(String(replies[1]?.['message']), /\(code 1009\); not stored$/);
    assert.equal(frames.length, 2, 'one new connection, for the purchases after it');
    assert.ok(!frames.flat().some((frame) => frame.includes('"big"')));
  },
);

test(
  'several frames over the limit in flight: each is answered too_large, none resent after it',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer(
      (socket, frame) => socket.send(JSON.stringify(ack(frame))),
      { maxPayload: 200 },
    );
    // More of them than retries: closes that settle a purchase are not failures.
    const items = [
      bulky('big1', 300),
      purchase('p1'),
      bulky('big2', 250),
      bulky('big3', 400),
      purchase('p4'),
    ];
    const { replies, error } = await collect(sendPurchases(items, options(url, { retries: 1 })));

    assert.equal(error, undefined);
    assert.deepEqual(
      replies.map((reply) => [reply['id'], reply['code'] ?? reply.status]),
      [
        ['big1', 'too_large'],
        ['p1', 'ack'],
        ['big2', 'too_large'],
        ['big3', 'too_large'],
        ['p4', 'ack'],
      ],
    );
    assert.equal(frames.length, 4, 'a new connection after each of the three');
  },
);

test(
  'a frame over maxFrameBytes is answered too_large in its place without being sent',
  { timeout: 10_000 },
  async () => {
    const { url, frames } = await startServer((socket, frame) =>
      socket.send(JSON.stringify(ack(frame))),
    );
    const items = [purchase('p0'), bulky('big', 300), purchase('p2')];
    const { replies, error } = await collect(
      sendPurchases(items, options(url, { maxFrameBytes: 200 })),
    );

    assert.equal(error, undefined);
    const bytes = Buffer.byteLength(bulky('big', 300).frame);
    assert.deepEqual(replies[1], {
      status: 'error',
      code: 'too_large',
      id: 'big',
      message: `its frame is ${bytes} bytes, more than the 200 a frame may hold; not sent`,
    });
    assert.deepEqual(
      replies.map((reply) => reply.status),
      ['ack', 'error', 'ack'],
    );
    assert.deepEqual(frames, [[purchase('p0').frame, purchase('p2').frame]]);
  },
);
