// Hostile calls against the wallet service running as its own process: malformed gRPC
// spoken by hand over HTTP/2, user ids at and past every bound, deadlines too short to
// meet, streams reset at speed. Each gets a clear gRPC status (the one grpc-js and
// src/servers/grpc.ts actually give, asserted exactly), the process stays up, and valid
// calls keep getting their exact totals.
import assert from 'node:assert/strict';
import { connect as connectHttp2, constants, type ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  credentials,
  loadPackageDefinition,
  status,
  type CallOptions,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { walletKey } from '../../src/adapters/redis/walletKeys.ts';
import { connectWallet, type WalletClient } from '../grpcClient.ts';
import { clearKeyPrefix, reliabilityLevel, testConfig, uniqueName } from '../helpers.ts';
import { openTcp } from './hostileRawSocket.ts';
import { startWalletChild, within, type ChildService } from './hostileServices.ts';
import { recordFigures } from './results.ts';

const FULL = reliabilityLevel === 'full';
const GET_BALANCE = '/trade_engine_wallet.WalletService/GetBalance';
// The documented user_id rule: no control characters (C0, DEL, C1).
// eslint-disable-next-line no-control-regex -- matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Totals seeded in Redis (cents), as the wallet pipeline would have written them. */
const SEEDED: Readonly<Record<string, number>> = {
  'known-user': 4_999,
  'big-spender': 100_000_000,
  'one-cent': 1,
};

/** The request decoder the server uses, to predict what random bytes decode to. */
const definition = loadSync(fileURLToPath(new URL('../../proto/wallet.proto', import.meta.url)), {
  keepCase: true,
  longs: String,
  defaults: true,
});
const getBalanceMethod = (
  definition['trade_engine_wallet.WalletService'] as unknown as Record<
    string,
    {
      requestDeserialize: (bytes: Buffer) => { user_id: string };
      responseDeserialize: (bytes: Buffer) => { balances: Record<string, number> };
    }
  >
)['GetBalance'];
assert.ok(getBalanceMethod !== undefined);
const decodeRequest = getBalanceMethod.requestDeserialize;
const decodeResponse = getBalanceMethod.responseDeserialize;

const varint = (value: number): Buffer => {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
};

/** `BalanceRequest{user_id}` encoded by hand (field 1, length-delimited). */
const balanceRequest = (userId: string | Buffer): Buffer => {
  const bytes = typeof userId === 'string' ? Buffer.from(userId, 'utf8') : userId;
  return Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
};

/** A gRPC length-prefixed message; `declaredLength` lies about its size. */
const grpcFrame = (
  message: Buffer,
  options: { compressed?: boolean; declaredLength?: number } = {},
): Buffer => {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(options.compressed === true ? 1 : 0, 0);
  prefix.writeUInt32BE(options.declaredLength ?? message.length, 1);
  return Buffer.concat([prefix, message]);
};

/** What came back on one HTTP/2 stream. */
interface RawAnswer {
  readonly httpStatus: number | undefined;
  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
}

/**
 * One request on `session`: the gRPC headers unless replaced, then `body` (after
 * `bodyDelayMs`), then end of stream unless `keepOpen`.
 */
const rawCall = (
  session: ClientHttp2Session,
  options: {
    path?: string;
    headers?: Record<string, string | undefined>;
    body?: Buffer;
    bodyDelayMs?: number;
  } = {},
): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    const wanted = {
      ':method': 'POST',
      ':path': options.path ?? GET_BALANCE,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...options.headers,
    };
    for (const [name, value] of Object.entries(wanted))
      if (value !== undefined) headers[name] = value;
    const stream = session.request(headers, { endStream: false });
    let httpStatus: number | undefined;
    let grpcStatus: number | undefined;
    let grpcMessage: string | undefined;
    const chunks: Buffer[] = [];
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
      const text = h['grpc-message'];
      if (typeof text === 'string') grpcMessage = percentDecoded(text);
    };
    const timer = setTimeout(() => {
      stream.close(constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer on ${headers[':path']} within 10 s`));
    }, 10_000);
    stream.on('response', (h) => {
      httpStatus = Number(h[':status']);
      take(h);
    });
    stream.on('trailers', take);
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      clearTimeout(timer);
      resolve({ httpStatus, grpcStatus, grpcMessage, body: Buffer.concat(chunks) });
    });
    const finish = () => {
      if (stream.closed || stream.destroyed) return;
      if (options.body === undefined) stream.end();
      else stream.end(options.body);
    };
    if (options.bodyDelayMs === undefined) finish();
    else setTimeout(finish, options.bodyDelayMs);
  });

const openSession = (address: string): Promise<ClientHttp2Session> =>
  new Promise((resolve, reject) => {
    const session = connectHttp2(`http://${address}`);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });

const codeOf = (error: unknown): number => (error as ServiceError).code;

/** grpc-message is percent-encoded; details may hold a lone `%` grpc-js left as is. */
const percentDecoded = (text: string): string => {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
};

const WalletService = (
  loadPackageDefinition(definition)['trade_engine_wallet'] as unknown as {
    WalletService: ServiceClientConstructor;
  }
).WalletService;

/**
 * A wallet client on an HTTP/2 connection of its own. grpc-js otherwise shares one
 * connection among all clients of an address, so what one client's calls do to the
 * connection reaches the others' calls too.
 */
const ownConnectionClient = (address: string) => {
  const own = new WalletService(address, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  type Call = (
    request: { user_id: string },
    options: CallOptions,
    callback: (error: ServiceError | null, reply?: { balances: Record<string, number> }) => void,
  ) => void;
  const call = (own['GetBalance'] as Call).bind(own);
  return {
    getBalance: (userId: string, deadlineMs = 5_000) =>
      new Promise<{ balances: Record<string, number> }>((resolve, reject) => {
        call({ user_id: userId }, { deadline: Date.now() + deadlineMs }, (error, reply) =>
          error === null && reply !== undefined
            ? resolve(reply)
            : reject(error ?? new Error('no reply')),
        );
      }),
    close: () => own.close(),
  };
};

describe('hostile gRPC calls', () => {
  const prefix = `${uniqueName('hostile_grpc')}:`;
  let redis: Redis | undefined;
  let wallet: (ChildService & { address: string }) | undefined;
  let client: WalletClient | undefined;
  const statuses: Record<string, number> = {};
  const count = (name: string, by = 1) => {
    statuses[name] = (statuses[name] ?? 0) + by;
  };

  before(async () => {
    redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
    wallet = await startWalletChild(prefix);
    for (const [user, cents] of Object.entries(SEEDED)) {
      await redis.hset(walletKey(user), 'total', String(cents));
    }
    client = connectWallet(wallet.address);
  });

  after(async () => {
    client?.close();
    if (wallet !== undefined) {
      recordFigures({
        scenario: 'hostile-grpc',
        peakRssMiB: wallet.peakRssMiB(),
        extra: { ...statuses },
      });
      await wallet.close();
    }
    if (redis !== undefined) {
      await clearKeyPrefix(redis, prefix);
      await redis.quit();
    }
  });

  /** Valid calls answer their exact totals and the process is up. */
  const assertServes = async (context: string) => {
    assert.ok(wallet?.alive(), `the wallet process is still running (${context})`);
    assert.ok(client !== undefined);
    for (const [user, cents] of Object.entries(SEEDED)) {
      assert.deepEqual(
        await client.getBalance(user),
        { balances: { total: cents / 100 } },
        `${user} after ${context}`,
      );
    }
    assert.deepEqual(await client.getBalance('nobody-at-all'), { balances: { total: 0 } });
  };

  test('malformed requests over raw HTTP/2 get a clear status; valid calls keep working', async () => {
    assert.ok(wallet !== undefined);
    const session = await openSession(wallet.address);
    session.on('error', () => undefined);
    const cases: Array<{
      name: string;
      call: Parameters<typeof rawCall>[1];
      http?: number;
      grpc: number | undefined;
      message?: RegExp;
    }> = [
      {
        name: 'a valid request by hand',
        call: { body: grpcFrame(balanceRequest('known-user')) },
        grpc: status.OK,
      },
      {
        name: 'garbage body: a field with wire type 7',
        call: { body: grpcFrame(Buffer.from([0x2f, 0x01, 0x02])) },
        grpc: status.INTERNAL,
        message: /deserializ/i,
      },
      {
        name: 'garbage body: a field tag with no length',
        call: { body: grpcFrame(Buffer.from([0x0a])) },
        grpc: status.INTERNAL,
        message: /deserializ/i,
      },
      {
        // grpc-js ends a unary call that half-closes without a whole message this way.
        name: 'truncated length prefix',
        call: { body: Buffer.from([0x00, 0x00, 0x00]) },
        grpc: status.UNIMPLEMENTED,
        message: /no request message/i,
      },
      {
        name: 'length prefix longer than the body',
        call: { body: grpcFrame(balanceRequest('known-user'), { declaredLength: 100 }) },
        grpc: status.UNIMPLEMENTED,
        message: /no request message/i,
      },
      {
        name: 'no body at all',
        call: {},
        grpc: status.UNIMPLEMENTED,
        message: /no request message/i,
      },
      {
        name: 'two messages on a unary call',
        call: {
          body: Buffer.concat([
            grpcFrame(balanceRequest('known-user')),
            grpcFrame(balanceRequest('one-cent')),
          ]),
        },
        grpc: status.UNIMPLEMENTED,
        message: /second request message/i,
      },
      {
        name: 'a message over the 4 MiB receive limit (announced)',
        call: { body: grpcFrame(Buffer.alloc(16), { declaredLength: 5 * 1_048_576 }) },
        grpc: status.RESOURCE_EXHAUSTED,
      },
      {
        name: 'compressed with an unsupported encoding',
        call: {
          headers: { 'grpc-encoding': 'snappy' },
          body: grpcFrame(balanceRequest('known-user'), { compressed: true }),
        },
        grpc: status.UNIMPLEMENTED,
        message: /unsupported encoding/i,
      },
      {
        name: 'gzip flag on bytes that are not gzip',
        call: {
          headers: { 'grpc-encoding': 'gzip' },
          body: grpcFrame(Buffer.from('not gzip at all'), { compressed: true }),
        },
        grpc: status.INTERNAL,
        message: /decompress/i,
      },
      {
        // The HTTP/2 spec of gRPC: a server answers a non-gRPC content type with 415.
        name: 'wrong content-type',
        call: {
          headers: { 'content-type': 'application/json' },
          body: Buffer.from('{"user_id":"known-user"}'),
        },
        http: 415,
        grpc: undefined,
      },
      {
        name: 'no content-type',
        call: { headers: { 'content-type': undefined }, body: grpcFrame(balanceRequest('x')) },
        http: 415,
        grpc: undefined,
      },
      {
        name: 'unknown method',
        call: { path: '/trade_engine_wallet.WalletService/Nope', body: grpcFrame(Buffer.alloc(0)) },
        grpc: status.UNIMPLEMENTED,
      },
      {
        name: 'unknown service',
        call: { path: '/no.Such/Service', body: grpcFrame(Buffer.alloc(0)) },
        grpc: status.UNIMPLEMENTED,
      },
      {
        name: 'a path that is not a method',
        call: { path: '/%00%ff/../..', body: grpcFrame(Buffer.alloc(0)) },
        grpc: status.UNIMPLEMENTED,
      },
      {
        name: 'a grpc-timeout that is not a duration',
        call: { headers: { 'grpc-timeout': 'soon' }, body: grpcFrame(balanceRequest('x')) },
        grpc: status.INTERNAL,
        message: /grpc-timeout/i,
      },
      {
        // Server-side deadline: the request arrives after its 1 ms are up.
        name: 'a 1 ms grpc-timeout with the body late',
        call: {
          headers: { 'grpc-timeout': '1m' },
          body: grpcFrame(balanceRequest('known-user')),
          bodyDelayMs: 200,
        },
        grpc: status.DEADLINE_EXCEEDED,
      },
    ];
    try {
      for (const { name, call, http, grpc, message } of cases) {
        const answer = await rawCall(session, call);
        assert.equal(answer.httpStatus, http ?? 200, `${name}: HTTP status`);
        assert.equal(answer.grpcStatus, grpc, `${name}: grpc-status (${answer.grpcMessage})`);
        if (message !== undefined) assert.match(String(answer.grpcMessage), message, name);
        count(`raw ${grpc === undefined ? `http ${http}` : status[grpc]}`);
        await assertServes(name);
      }
    } finally {
      session.close();
    }
  });

  test('random message bodies: decodable ones are answered, the rest are INTERNAL', async () => {
    assert.ok(wallet !== undefined);
    const session = await openSession(wallet.address);
    session.on('error', () => undefined);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
            // Well-formed field 1 holding arbitrary bytes (invalid UTF-8 included).
            fc.uint8Array({ maxLength: 160 }).map((bytes) => balanceRequest(Buffer.from(bytes))),
            fc.constantFrom(...Object.keys(SEEDED)).map((user) => balanceRequest(user)),
          ),
          async (message) => {
            let decoded: { user_id: string } | undefined;
            try {
              decoded = decodeRequest(message);
            } catch {
              decoded = undefined;
            }
            const answer = await rawCall(session, { body: grpcFrame(message) });
            assert.equal(answer.httpStatus, 200);
            if (decoded === undefined) {
              assert.equal(answer.grpcStatus, status.INTERNAL, answer.grpcMessage);
              count('random INTERNAL');
              return;
            }
            const userId = decoded.user_id;
            const characters = [...userId].length;
            if (characters === 0 || characters > 128 || CONTROL.test(userId)) {
              assert.equal(answer.grpcStatus, status.INVALID_ARGUMENT, JSON.stringify(userId));
              count('random INVALID_ARGUMENT');
              return;
            }
            if (userId.length > 128) {
              // At most 128 characters but more UTF-16 units: the bug reported below.
              assert.ok(
                answer.grpcStatus === status.OK || answer.grpcStatus === status.INVALID_ARGUMENT,
              );
              count('random over 128 units');
              return;
            }
            assert.equal(answer.grpcStatus, status.OK, answer.grpcMessage);
            assert.deepEqual(decodeResponse(answer.body.subarray(5)), {
              balances: {
                total: (Object.hasOwn(SEEDED, userId) ? (SEEDED[userId] ?? 0) : 0) / 100,
              },
            });
            count('random OK');
          },
        ),
        { numRuns: FULL ? 2_000 : 200 },
      );
    } finally {
      session.close();
    }
    await assertServes('random message bodies');
  });

  test('user ids at and past every bound', async () => {
    assert.ok(client !== undefined);
    const wallets = client;
    const rejects = async (userId: string, code: status, details?: RegExp) => {
      const error = await wallets.getBalance(userId, 30_000).then(
        () => assert.fail(`expected ${status[code]} for a user id of ${userId.length} units`),
        (e: unknown) => e as ServiceError,
      );
      assert.equal(error.code, code, error.message);
      if (details !== undefined) assert.match(error.details, details);
      count(`ids ${status[code]}`);
    };
    await rejects('x'.repeat(1_048_576), status.INVALID_ARGUMENT, /at most 128/);
    await rejects('', status.INVALID_ARGUMENT, /empty/);
    await rejects('x'.repeat(129), status.INVALID_ARGUMENT, /at most 128/);
    await rejects('tab\there', status.INVALID_ARGUMENT, /control/);
    await rejects('\u0085', status.INVALID_ARGUMENT, /control/);
    // Over the server's 4 MiB receive limit: refused before it is decoded.
    await rejects('x'.repeat(5 * 1_048_576), status.RESOURCE_EXHAUSTED);
    assert.deepEqual(await wallets.getBalance('x'.repeat(128)), { balances: { total: 0 } });
    assert.deepEqual(await wallets.getBalance('😀'.repeat(64)), { balances: { total: 0 } });
    await assertServes('huge and empty user ids');
  });

  // The ingest service accepts a user_id of up to 128 characters (code points, as
  // docs/protocol.md says); GetBalance once measured UTF-16 units, so a user of 65 emoji
  // (130 units) could buy and be totalled but never read the total.
  test('a user_id the ingest service accepts (65 emoji: 65 characters) can read its total', async () => {
    assert.ok(client !== undefined && redis !== undefined);
    const userId = '😀'.repeat(65);
    await redis.hset(walletKey(userId), 'total', '250');
    assert.deepEqual(await client.getBalance(userId), { balances: { total: 2.5 } });
  });

  test('deadlines too short to meet end in DEADLINE_EXCEEDED, and only those', async () => {
    assert.ok(wallet !== undefined && client !== undefined);
    assert.equal(
      await client.getBalance('known-user', 1).then(() => status.OK, codeOf),
      status.DEADLINE_EXCEEDED,
    );
    // Bursts of 800 calls with 1–400 ms deadlines, each on a connection of its own.
    const rounds = FULL ? 25 : 3;
    const perRound = 800;
    const users = Object.keys(SEEDED);
    let ok = 0;
    for (let round = 0; round < rounds; round += 1) {
      const burst = ownConnectionClient(wallet.address);
      try {
        // Connected first, so the deadlines measure the calls, not the connection set-up.
        await burst.getBalance('known-user');
        const outcomes = await Promise.all(
          Array.from({ length: perRound }, async (_, i) => {
            const user = users[i % users.length] ?? 'known-user';
            try {
              const reply = await burst.getBalance(user, 1 + (i % 80) * 5);
              assert.deepEqual(reply, { balances: { total: (SEEDED[user] ?? 0) / 100 } });
              return 'OK';
            } catch (error) {
              if (error instanceof assert.AssertionError) throw error;
              assert.equal(codeOf(error), status.DEADLINE_EXCEEDED, String(error));
              return 'DEADLINE_EXCEEDED';
            }
          }),
        );
        ok += outcomes.filter((o) => o === 'OK').length;
      } finally {
        burst.close();
      }
      await assertServes(`burst ${round + 1} of short deadlines`);
    }
    count('short deadlines OK', ok);
    count('short deadlines DEADLINE_EXCEEDED', rounds * perRound - ok);
  });

  // Past ~1,000 cancelled streams on one connection, Node's nghttp2 reset-flood guard at its
  // defaults ends the connection with GOAWAY INTERNAL_ERROR, and calls still open on it
  // fail with INTERNAL ("Session closed with error code 2"). Cancelling is what every gRPC
  // client does when a deadline passes, and grpc-js clients of one address share a
  // connection, so the server raises those limits (allowDeadlineCancels in grpc.ts).
  test('calls whose deadlines pass by the thousand do not take down the valid calls beside them', async () => {
    assert.ok(wallet !== undefined);
    const burst = ownConnectionClient(wallet.address);
    try {
      await burst.getBalance('known-user');
      const outcomes = await Promise.all(
        Array.from({ length: 3_000 }, (_, i) =>
          burst.getBalance('known-user', 1 + (i % 60) * 25).then(() => status.OK, codeOf),
        ),
      );
      const answered: number[] = [status.OK, status.DEADLINE_EXCEEDED];
      const unexpected = outcomes.filter((code) => !answered.includes(code));
      assert.deepEqual(unexpected, [], 'each call is answered OK or DEADLINE_EXCEEDED');
      assert.deepEqual(await burst.getBalance('known-user'), { balances: { total: 49.99 } });
    } finally {
      burst.close();
    }
  });

  test('streams reset at speed and garbage on the port leave the server serving', async () => {
    assert.ok(wallet !== undefined);
    const streams = FULL ? 20_000 : 2_000;
    const session = await openSession(wallet.address);
    let sessionError: unknown;
    session.on('error', (error) => {
      sessionError = error;
    });
    session.on('goaway', () => undefined);
    let opened = 0;
    for (let i = 0; i < streams && !session.closed && !session.destroyed; i += 1) {
      const stream = session.request({
        ':method': 'POST',
        ':path': GET_BALANCE,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.on('error', () => undefined);
      stream.write(grpcFrame(balanceRequest('known-user')).subarray(0, 3));
      stream.close(constants.NGHTTP2_CANCEL);
      opened += 1;
      if (i % 200 === 0) await sleep(1);
    }
    session.destroy();
    count('reset streams', opened);
    // HTTP/1.1 and random bytes on the gRPC port: the connection is closed, nothing else.
    for (const garbage of [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x09\x00\x00\x00\x00\x00junk'),
      Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256)),
    ]) {
      const socket = await openTcp(wallet.port);
      socket.on('error', () => undefined);
      socket.resume();
      socket.write(garbage);
      const closed = await within(
        new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
        15_000,
        false,
      );
      socket.destroy();
      assert.ok(closed, 'the server closed a connection that is not HTTP/2');
      count('garbage connections closed');
    }
    assert.equal(
      sessionError === undefined || sessionError instanceof Error,
      true,
      'only a session error, never a crash',
    );
    await assertServes('reset streams and garbage');
  });
});
