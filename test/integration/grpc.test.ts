import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  credentials,
  loadPackageDefinition,
  status,
  type CallOptions,
  type Client,
  type ClientDuplexStream,
  type ClientUnaryCall,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  load,
  loadFileDescriptorSetFromBuffer,
  type MessageTypeDefinition,
  type Options,
} from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { createBalanceReader } from '../../src/adapters/redis/balanceReader.ts';
import type { BalanceReader } from '../../src/core/ports.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { walletKey } from '../../src/adapters/redis/walletKeys.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { createLogger } from '../../src/logger.ts';
import { startGrpcServer, type WalletGrpcServer } from '../../src/servers/grpc.ts';
import { testConfig, uniqueName, clearKeyPrefix } from '../helpers.ts';

const prefix = `${uniqueName('test')}:`;
const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
const readerRedis = createRedis({
  url: testConfig.redis.url,
  keyPrefix: prefix,
  autoPipelining: true,
});
const reader = createBalanceReader(readerRedis);
const logger = createLogger('error', { test: 'grpc' }, () => undefined);
const protoOptions: Options = { keepCase: true, longs: String, enums: String, defaults: true };

interface Balance {
  balances: Record<string, number>;
}
type Unary<Request, Response> = (
  request: Request,
  options: CallOptions,
  callback: (error: ServiceError | null, response?: Response) => void,
) => ClientUnaryCall;

const servers: WalletGrpcServer[] = [];
const clients: Client[] = [];
let server: WalletGrpcServer;

const start = async (
  balanceReader: BalanceReader,
  config: { readTimeoutMs?: number } = {},
): Promise<WalletGrpcServer> => {
  const started = await startGrpcServer(
    { host: '127.0.0.1', port: 0, ...config },
    { reader: balanceReader, isServing: () => true, logger },
  );
  servers.push(started);
  return started;
};

/** A client of `service` (a fully qualified name) in a package loaded from proto files. */
const clientOf = async (
  files: string | string[],
  service: string,
  port: number,
  includeDirs: string[] = [],
): Promise<Client> => {
  const root = loadPackageDefinition(await load(files, { ...protoOptions, includeDirs }));
  let node: unknown = root;
  for (const part of service.split('.')) node = (node as GrpcObject)[part];
  const Constructor = node as ServiceClientConstructor;
  const client = new Constructor(`127.0.0.1:${port}`, credentials.createInsecure());
  clients.push(client);
  return client;
};

const unary = <Request, Response>(
  client: Client,
  method: string,
  request: Request,
  options: CallOptions = {},
): Promise<Response> =>
  new Promise((resolvePromise, reject) => {
    const call = (client as unknown as Record<string, Unary<Request, Response>>)[method];
    assert.ok(call, `client has no method ${method}`);
    call.call(client, request, options, (error, response) =>
      error === null ? resolvePromise(response as Response) : reject(error),
    );
  });

const walletProto = fileURLToPath(new URL('../../proto/wallet.proto', import.meta.url));
const walletClient = (port: number) =>
  clientOf(walletProto, 'trade_engine_wallet.WalletService', port);
const getBalance = (client: Client, userId: string, options?: CallOptions) =>
  unary<{ user_id: string }, Balance>(client, 'GetBalance', { user_id: userId }, options);

const rejectsWith = (code: status, details?: RegExp) => (error: unknown) => {
  const serviceError = error as ServiceError;
  assert.equal(serviceError.code, code, `expected ${status[code]}, got ${serviceError.message}`);
  if (details !== undefined) assert.match(serviceError.details, details);
  return true;
};

let wallet: Client;

before(async () => {
  // As the wallet leaves Redis before it serves: every bucket's hash in place, so that a
  // user without a hash is known to be one never seen.
  await createWalletStore(redis).markInitialised('user_purchase');
  server = await start(reader);
  wallet = await walletClient(server.port);
});

after(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((running) => running.close()));
  await clearKeyPrefix(redis, prefix);
  await Promise.all([redis.quit(), readerRedis.quit()]);
});

test('GetBalance answers the total in the wallet hash, in currency units', async () => {
  await redis.hset(walletKey('123'), { total: '4999', 'o:user_purchase:0': '41' });
  assert.deepEqual(await getBalance(wallet, '123'), { balances: { total: 49.99 } });
});

test('an unknown user has a total of 0', async () => {
  assert.deepEqual(await getBalance(wallet, 'nobody-at-all'), { balances: { total: 0 } });
});

test('totals come out as the double nearest their exact decimal value', async () => {
  const cases = [
    ['1', 0.01],
    ['10', 0.1],
    ['30', 0.3],
    ['110', 1.1],
    ['123456789012', 1_234_567_890.12],
    ['900719925474099', 9_007_199_254_740.99],
  ] as const;
  for (const [cents, expected] of cases) {
    await redis.hset(walletKey(`exact-${cents}`), 'total', cents);
    const { balances } = await getBalance(wallet, `exact-${cents}`);
    assert.equal(balances.total, expected, `${cents} cents`);
  }
});

test('a user_id that is empty, too long or holds control characters is INVALID_ARGUMENT', async () => {
  await assert.rejects(getBalance(wallet, ''), rejectsWith(status.INVALID_ARGUMENT, /empty/));
  await assert.rejects(
    getBalance(wallet, 'x'.repeat(129)),
    rejectsWith(status.INVALID_ARGUMENT, /at most 128/),
  );
  await assert.rejects(
    getBalance(wallet, 'a\u0000b'),
    rejectsWith(status.INVALID_ARGUMENT, /control characters/),
  );
  // The longest allowed id is still answered.
  assert.deepEqual(await getBalance(wallet, 'x'.repeat(128)), { balances: { total: 0 } });
});

test('a Redis that cannot be reached is UNAVAILABLE', async () => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', autoPipelining: true });
  dead.on('error', () => undefined);
  try {
    const deadServer = await start(createBalanceReader(dead));
    const client = await walletClient(deadServer.port);
    await assert.rejects(
      getBalance(client, '123', { deadline: Date.now() + 10_000 }),
      rejectsWith(status.UNAVAILABLE),
    );
  } finally {
    dead.disconnect();
  }
});

test('a total that is not integer cents is INTERNAL, not a guess', async () => {
  await redis.hset(walletKey('garbled'), 'total', '12.5');
  await assert.rejects(getBalance(wallet, 'garbled'), rejectsWith(status.INTERNAL));
});

test('a read that never answers ends at the deadline; the server keeps serving', async () => {
  const hanging: BalanceReader = {
    totalCents: (userId) =>
      userId === 'hang' ? new Promise<number>(() => {}) : reader.totalCents(userId),
  };
  const hangServer = await start(hanging);
  const client = await walletClient(hangServer.port);
  const began = Date.now();
  await assert.rejects(
    getBalance(client, 'hang', { deadline: Date.now() + 50 }),
    rejectsWith(status.DEADLINE_EXCEEDED),
  );
  assert.ok(Date.now() - began < 2_000, 'the deadline was honoured');
  assert.deepEqual(await getBalance(client, '123'), { balances: { total: 49.99 } });
  const health = await clientOf(healthProtoPath, 'grpc.health.v1.Health', hangServer.port);
  assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
});

test('a read that never answers, without a deadline, is UNAVAILABLE after the read timeout', async () => {
  const hangServer = await start(
    { totalCents: () => new Promise<number>(() => {}) },
    {
      readTimeoutMs: 100,
    },
  );
  const client = await walletClient(hangServer.port);
  await assert.rejects(getBalance(client, '123'), rejectsWith(status.UNAVAILABLE));
});

test('2,000 concurrent calls all get their own user’s total, over pipelined reads', async (t) => {
  const users = 500;
  const seed = redis.pipeline();
  for (let i = 0; i < users; i += 1) seed.hset(walletKey(`many-${i}`), 'total', String(i * 101));
  await seed.exec();

  // Count the writes to the reader's socket: without pipelining there is one per call.
  const writes = t.mock.method(readerRedis.stream, 'write');
  const calls = Array.from({ length: 2_000 }, (_, n) => n % users);
  const answers = await Promise.all(calls.map((i) => getBalance(wallet, `many-${i}`)));
  answers.forEach((answer, n) => {
    const cents = (n % users) * 101;
    assert.deepEqual(answer, { balances: { total: cents / 100 } }, `call ${n}`);
  });
  const count = writes.mock.callCount();
  assert.ok(count < 2_000 / 10, `2,000 reads took ${count} writes to Redis`);
});

test('health checks say SERVING, then NOT_SERVING after setServing(false)', async () => {
  const healthServer = await start(reader);
  const health = await clientOf(healthProtoPath, 'grpc.health.v1.Health', healthServer.port);
  for (const service of ['', 'trade_engine_wallet.WalletService']) {
    assert.deepEqual(await unary(health, 'Check', { service }), { status: 'SERVING' });
  }
  healthServer.setServing(false);
  for (const service of ['', 'trade_engine_wallet.WalletService']) {
    assert.deepEqual(await unary(health, 'Check', { service }), { status: 'NOT_SERVING' });
  }
  healthServer.setServing(true);
  assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
  await assert.rejects(
    unary(health, 'Check', { service: 'no.such.Service' }),
    rejectsWith(status.NOT_FOUND),
  );
});

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** Sends reflection requests on one ServerReflectionInfo stream and collects the answers. */
const reflect = async (
  version: 'v1' | 'v1alpha',
  requests: object[],
): Promise<ReflectionResponse[]> => {
  const proto = resolve(
    dirname(fileURLToPath(import.meta.resolve('@grpc/reflection'))),
    `../proto/grpc/reflection/${version}/reflection.proto`,
  );
  const client = await clientOf(proto, `grpc.reflection.${version}.ServerReflection`, server.port);
  const open = (client as unknown as Record<string, () => ClientDuplexStream<object, object>>)
    .ServerReflectionInfo;
  assert.ok(open);
  const stream = open.call(client);
  const answers: ReflectionResponse[] = [];
  const done = new Promise<ReflectionResponse[]>((resolveAnswers, reject) => {
    stream.on('data', (answer: ReflectionResponse) => {
      answers.push(answer);
      if (answers.length === requests.length) stream.end();
    });
    stream.on('error', reject);
    stream.on('end', () => resolveAnswers(answers));
  });
  for (const request of requests) stream.write(request);
  return done;
};

test('reflection lists the wallet and health services, in both protocol versions', async () => {
  for (const version of ['v1', 'v1alpha'] as const) {
    const [answer] = await reflect(version, [{ list_services: '' }]);
    const names = answer?.list_services_response?.service.map((service) => service.name) ?? [];
    assert.ok(names.includes('trade_engine_wallet.WalletService'), `${version}: ${names.join()}`);
    assert.ok(names.includes('grpc.health.v1.Health'), `${version}: ${names.join()}`);
  }
});

interface DescribedMessage {
  name: string;
  field?: { name: string; typeName?: string }[];
  nestedType?: { name: string; options?: { mapEntry?: boolean } }[];
}

const varint = (value: number): Buffer => {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
};

test('reflection describes the wallet well enough to call it without the proto file', async () => {
  const [answer] = await reflect('v1', [
    { file_containing_symbol: 'trade_engine_wallet.WalletService' },
  ]);
  const files = answer?.file_descriptor_response?.file_descriptor_proto ?? [];
  assert.ok(files.length > 0, JSON.stringify(answer?.error_response));

  // grpcurl (Go) and C++ descriptor pools reject a map whose entry is not `<Field>Entry`.
  const codec = (await load('google/protobuf/descriptor.proto'))[
    'google.protobuf.FileDescriptorProto'
  ] as MessageTypeDefinition<object, { messageType?: DescribedMessage[] }>;
  const response = files
    .flatMap((file) => codec.deserialize(file).messageType ?? [])
    .find((message) => message.name === 'BalanceResponse');
  assert.deepEqual(response?.field, [
    {
      name: 'balances',
      number: 1,
      label: 3,
      type: 11,
      typeName: '.trade_engine_wallet.BalanceResponse.BalancesEntry',
    },
  ]);
  assert.equal(response?.nestedType?.[0]?.name, 'BalancesEntry');
  assert.equal(response?.nestedType?.[0]?.options?.mapEntry, true);

  // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: tag, length, bytes.
  const set = Buffer.concat(
    files.flatMap((file) => [Buffer.from([0x0a]), varint(file.length), file]),
  );
  const root = loadPackageDefinition(loadFileDescriptorSetFromBuffer(set, protoOptions));
  const Constructor = (root.trade_engine_wallet as GrpcObject)
    .WalletService as ServiceClientConstructor;
  const client = new Constructor(`127.0.0.1:${server.port}`, credentials.createInsecure());
  clients.push(client);
  // protobufjs rebuilds no maps from descriptors, so this client sees the entries the map
  // is sent as on the wire; what matters is that the call works with no proto file.
  assert.deepEqual(await getBalance(client, '123'), {
    balances: [{ key: 'total', value: 49.99 }],
  });
});
