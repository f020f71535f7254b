// The `spendstream` command as a user runs it: a child process against a real ingest and
// wallet (their own database, topic, group and key prefix), and once as packaged.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, copyFile, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { before, test } from 'node:test';
import { sql } from 'slonik';
import { z } from 'zod';
import { createPurchaseStore } from '../../src/adapters/postgres/purchaseStore.ts';
import type { WalletService } from '../../src/services/walletService.ts';
import { ROOT } from '../../scripts/infra.ts';
import type { WalletClient } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { startSystem, type StartedIngest } from '../harness/services.ts';
import { childEnv, uniqueName } from '../helpers.ts';

let ingest: StartedIngest;
let wallet: WalletService;
let client: WalletClient;
let env: NodeJS.ProcessEnv;

before(async (t) => {
  const system = await startSystem(t);
  ({ ingest } = system);
  wallet = system.wallet.service;
  client = system.wallet.client;
  // Where the CLI finds the services: the settings they were started with.
  env = childEnv({
    DATABASE_URL: ingest.config.postgres.url,
    REDIS_KEY_PREFIX: system.config.redis.keyPrefix,
    WS_HOST: '127.0.0.1',
    WS_PORT: String(ingest.service.port),
    WS_PATH: ingest.config.ws.path,
    WALLET_GRPC_ADDRESS: `127.0.0.1:${wallet.grpcPort}`,
  });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as the JSON lines it should be. */
  readonly lines: Record<string, unknown>[];
}

/** Runs `command args…` with `input` on stdin; resolves once it exited. */
const run = async (
  command: readonly string[],
  { input, childEnvironment = env }: { input?: string; childEnvironment?: NodeJS.ProcessEnv } = {},
): Promise<Run> => {
  const [file = '', ...args] = command;
  const child = spawn(file, args, { env: childEnvironment, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return {
    code,
    stdout,
    stderr,
    get lines() {
      return stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
  };
};

/** `spendstream args…` from the checkout (`npm run cli`). */
const cli = (args: readonly string[], options?: { input?: string }) =>
  run([process.execPath, `${ROOT}src/cli.ts`, ...args], options);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const stored = async (ids: readonly string[]) =>
  ingest.pool.any(
    sql.type(z.object({ id: z.string(), user_id: z.string(), amount: z.string() }))`
      SELECT id, user_id, amount::text FROM purchases WHERE id = ANY(${sql.array(ids, 'text')})
      ORDER BY id`,
  );

/** Polls GetBalance until `userId`'s total is `total`. */
const walletShows = (userId: string, total: number) =>
  eventually(
    `the wallet showing ${total} for ${userId}`,
    async () => (await client.getBalance(userId)).balances['total'] === total,
    { intervalMs: 20 },
  );

test('send takes purchases as arguments, one JSON object each, and prints each ack in order', async () => {
  const result = await cli([
    'send',
    '{"id":"cli-arg-1","user_id":"cli-args","amount":49.99}',
    '{"user_id":"cli-args","amount":"10.00"}',
  ]);

  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.lines[0], { status: 'ack', id: 'cli-arg-1', duplicate: false });
  assert.equal(result.lines[1]?.['status'], 'ack');
  const assigned = String(result.lines[1]?.['id']);
  assert.match(assigned, UUID, 'the CLI gave it an id, so that a resend is recognised');
  assert.equal(result.lines.length, 2);
  assert.equal(result.stderr, '2 purchases: 2 acked\n');
  const rows = await stored(['cli-arg-1', assigned]);
  assert.deepEqual(
    new Map(rows.map((row) => [row.id, [row.user_id, row.amount]])),
    new Map([
      ['cli-arg-1', ['cli-args', '49.99']],
      [assigned, ['cli-args', '10.00']],
    ]),
  );
});

test('send --file reads JSON lines through a small window; resent ids are acked as duplicates', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spendstream-cli-'));
  try {
    const file = join(dir, 'purchases.jsonl');
    const ids = Array.from({ length: 120 }, (_, i) => `cli-file-${String(i).padStart(3, '0')}`);
    const lines = ids.map((id, i) =>
      JSON.stringify({ id, user_id: `cli-file-${i % 3}`, amount: 0.01 }),
    );
    await writeFile(file, `${lines.slice(0, 60).join('\n')}\n\n${lines.slice(60).join('\r\n')}\n`);

    const first = await cli(['send', '--file', file, '--window', '4']);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(
      first.lines.map((reply) => [reply['status'], reply['id'], reply['duplicate']]),
      ids.map((id) => ['ack', id, false]),
    );
    assert.equal((await stored(ids)).length, 120);

    // The same file again, as after an interrupted run: nothing is stored twice.
    const again = await cli(['send', '--file', file]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.lines.every((reply) => reply['duplicate'] === true));
    assert.equal(again.stderr, '120 purchases: 120 acked (120 duplicate)\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('send reads stdin as JSON lines when given no purchase, or -', async () => {
  const input =
    '{"id":"cli-stdin-1","user_id":"cli-stdin","amount":1}\n{"id":"cli-stdin-2","user_id":"cli-stdin","amount":2}\n';
  for (const args of [['send'], ['send', '-']]) {
    const result = await cli(args, { input });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      result.lines.map((reply) => [reply['status'], reply['id']]),
      [
        ['ack', 'cli-stdin-1'],
        ['ack', 'cli-stdin-2'],
      ],
    );
  }
  assert.equal((await stored(['cli-stdin-1', 'cli-stdin-2'])).length, 2);
});

test('an invalid purchase prints its error code in its place, the rest are stored, exit 1', async () => {
  const input = [
    '{"id":"cli-bad-1","user_id":"cli-bad","amount":1}',
    '{"id":"cli-bad-2","user_id":"cli-bad","amount":-5}',
    '{"user_id":"cli-bad", "amount":',
    '{"id":"cli-bad-3","user_id":"cli-bad","amount":3}',
  ].join('\n');
  const result = await cli(['send'], { input });

  assert.equal(result.code, 1);
  assert.deepEqual(
    result.lines.map((reply) => [reply['status'], reply['code'] ?? reply['id']]),
    [
      ['ack', 'cli-bad-1'],
      ['error', 'invalid_purchase'],
      ['error', 'invalid_json'],
      ['ack', 'cli-bad-3'],
    ],
  );
  assert.equal(result.lines[1]?.['field'], 'amount');
  assert.equal(result.lines[1]?.['id'], 'cli-bad-2');
  assert.equal(
    result.stderr,
    '4 purchases: 2 acked, 2 failed (invalid_purchase 1, invalid_json 1)\n',
  );
  assert.deepEqual(
    (await stored(['cli-bad-1', 'cli-bad-2', 'cli-bad-3'])).map((row) => row.id),
    ['cli-bad-1', 'cli-bad-3'],
  );
});

test('a line or frame over the frame limit is answered too_large in its place; the rest are stored', async () => {
  const input = [
    '{"id":"cli-large-1","user_id":"cli-large","amount":1}',
    // Over the ingest's INGEST_MAX_FRAME_BYTES, 1048576.
    JSON.stringify({
      id: 'cli-large-2',
      user_id: 'cli-large',
      amount: 2,
      pad: 'x'.repeat(1_200_000),
    }),
    '{"id":"cli-large-3","user_id":"cli-large","amount":3}',
  ].join('\n');
  // The CLI reads the ingest's limit from the settings: the line is answered as it is read.
  const local = await cli(['send'], { input });
  assert.equal(local.code, 1, local.stderr);
  assert.deepEqual(
    local.lines.map((reply) => [reply['status'], reply['code'] ?? reply['id']]),
    [
      ['ack', 'cli-large-1'],
      ['error', 'too_large'],
      ['ack', 'cli-large-3'],
    ],
  );
  assert.match(String(local.lines[1]?.['message']), /^line 2 is \d+ bytes, more than the 1048576 /);
  assert.equal(local.stderr, '3 purchases: 2 acked, 1 failed (too_large 1)\n');

  // With a higher --max-line-bytes the frame is sent, and the ingest closes the connection
  // on it with 1009: that purchase is answered too_large, the rest go on.
  const remote = await cli(['send', '--max-line-bytes', '4000000', '--retries', '1'], { input });
  assert.equal(remote.code, 1, remote.stderr);
  assert.deepEqual(
    remote.lines.map((reply) => [reply['status'], reply['code'] ?? 'ack', reply['id']]),
    [
      ['ack', 'ack', 'cli-large-1'],
      ['error', 'too_large', 'cli-large-2'],
      ['ack', 'ack', 'cli-large-3'],
    ],
  );
  assert.match(String(remote.lines[1]?.['message']), /\(code 1009\); not stored$/);
  assert.equal(remote.stderr, '3 purchases: 2 acked (2 duplicate), 1 failed (too_large 1)\n');
  assert.deepEqual(
    (await stored(['cli-large-1', 'cli-large-2', 'cli-large-3'])).map((row) => row.id),
    ['cli-large-1', 'cli-large-3'],
  );
});

test('mistakes in the command line exit 2 without sending anything', async () => {
  const cases = [
    ['send', 'user_id=1', 'amount=2'],
    ['send', '--file', 'x.jsonl', '{"user_id":"1","amount":1}'],
    ['send', '--file', `${ROOT}no/such/file.jsonl`],
    ['send', '--window', '0', '{"user_id":"1","amount":1}'],
    ['send', '--max-line-bytes', '0', '{"user_id":"1","amount":1}'],
    ['send', '--url', 'http://127.0.0.1/ws', '{"user_id":"1","amount":1}'],
    ['send', '--no-such-option'],
    ['balance'],
    ['reconcile', 'extra'],
    ['no-such-command'],
    [],
  ];
  for (const args of cases) {
    const result = await cli(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '', args.join(' '));
    assert.notEqual(result.stderr, '', args.join(' '));
  }
});

test('an ingest that cannot be reached: each purchase is answered unavailable with its id, exit 1', async () => {
  const result = await cli([
    'send',
    '--url',
    'ws://127.0.0.1:1/ws',
    '--retries',
    '1',
    '{"id":"cli-down-1","user_id":"u","amount":1}',
  ]);
  assert.equal(result.code, 1);
  assert.equal(result.lines[0]?.['code'], 'unavailable');
  assert.equal(result.lines[0]?.['id'], 'cli-down-1');
  assert.match(
    result.stderr,
    /send stopped: cannot connect to ws:\/\/127\.0\.0\.1:1\/ws: .*ECONNREFUSED/,
  );
});

test("balance prints each user's total once the wallet applied the purchases", async () => {
  const sent = await cli([
    'send',
    '{"user_id":"cli-balance","amount":49.99}',
    '{"user_id":"cli-balance","amount":"0.01"}',
  ]);
  assert.equal(sent.code, 0, sent.stderr);
  await walletShows('cli-balance', 50);

  const result = await cli(['balance', 'cli-balance', 'cli-never-seen']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    '{"user_id":"cli-balance","balances":{"total":50}}\n' +
      '{"user_id":"cli-never-seen","balances":{"total":0}}\n',
  );
});

test('balance reports a failed call with its gRPC status name and exits 1', async () => {
  const invalid = await cli(['balance', 'cli-balance', '']);
  assert.equal(invalid.code, 1);
  assert.equal(invalid.lines.length, 1, 'the other user is still answered');
  assert.equal(invalid.lines[0]?.['user_id'], 'cli-balance');
  assert.match(invalid.stderr, /^"": INVALID_ARGUMENT: .*empty/);

  const down = await cli(['balance', '--address', '127.0.0.1:1', 'cli-balance']);
  assert.equal(down.code, 1);
  assert.equal(down.stdout, '');
  assert.match(down.stderr, /^"cli-balance": UNAVAILABLE/);
});

test('reconcile exits 0 once the wallet holds every stored purchase', async () => {
  const totals = await ingest.pool.any(
    sql.type(z.object({ user_id: z.string(), total: z.string() }))`
      SELECT user_id, sum(amount)::text AS total FROM purchases GROUP BY user_id`,
  );
  assert.ok(totals.length >= 5, 'the earlier cases stored purchases of several users');
  for (const { user_id, total } of totals) await walletShows(user_id, Number(total));

  const result = await cli(['reconcile']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    `PostgreSQL and Redis agree on the totals of all ${totals.length} users.\n`,
  );

  // A purchase in PostgreSQL that never reached Kafka (its outbox entry is younger than
  // OUTBOX_MIN_AGE_MS, so recovery leaves it alone meanwhile) is a difference.
  await createPurchaseStore(ingest.pool).save([
    { id: 'cli-unpublished', userId: 'cli-reconcile', amountCents: 1_234 },
  ]);
  const differs = await cli(['reconcile']);
  assert.equal(differs.code, 1, differs.stderr);
  assert.match(differs.stdout, new RegExp(`^1 of ${totals.length + 1} users `));
  assert.match(differs.stdout, /^"cli-reconcile"\s+12\.34\s+0\.00$/m);
});

test('the bin package.json names is what the build emits, and runs as installed', async () => {
  const manifest = JSON.parse(await readFile(`${ROOT}package.json`, 'utf8')) as {
    bin: Record<string, string>;
    files: string[];
  };
  const bin = manifest.bin['spendstream'] ?? '';
  assert.equal(bin, './dist/cli.js');
  assert.ok(
    manifest.files.some((entry) => bin.replace(/^\.\//, '').startsWith(`${entry}/`)),
    'the bin is inside the published files',
  );

  // The package as npm would unpack it: the build in dist/, beside package.json, proto/
  // and migrations/, with the dependencies of the checkout.
  const root = await mkdtemp(join(tmpdir(), 'spendstream-pack-'));
  try {
    const build = await run([
      process.execPath,
      `${ROOT}node_modules/typescript/bin/tsc`,
      '-p',
      `${ROOT}tsconfig.build.json`,
      '--outDir',
      join(root, 'dist'),
    ]);
    assert.equal(build.code, 0, build.stdout + build.stderr);
    await copyFile(`${ROOT}package.json`, join(root, 'package.json'));
    for (const entry of ['proto', 'migrations', 'node_modules']) {
      await symlink(join(ROOT, entry), join(root, entry));
    }
    const installed = join(root, bin);
    assert.ok((await stat(installed)).isFile(), `${bin} was built`);
    assert.match(await readFile(installed, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    await chmod(installed, 0o755); // what npm does to a bin when installing it

    // The shebang finds `node` on PATH: this Node first, as node_modules/.bin puts it.
    const withNode = childEnv({});
    withNode['PATH'] = `${dirname(process.execPath)}${delimiter}${withNode['PATH'] ?? ''}`;
    const help = await run([installed, '--help'], { childEnvironment: withNode });
    assert.equal(help.code, 0, help.stderr);
    for (const command of ['send', 'balance', 'reconcile']) {
      assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));
    }
    const sendHelp = await run([installed, 'send', '--help'], { childEnvironment: withNode });
    assert.match(sendHelp.stdout, /^Usage: spendstream send /);

    // A command that needs the package's files (proto/wallet.proto) around the build.
    withNode['WALLET_GRPC_ADDRESS'] = `127.0.0.1:${wallet.grpcPort}`;
    const balance = await run([installed, 'balance', 'cli-balance'], {
      childEnvironment: withNode,
    });
    assert.equal(balance.code, 0, balance.stderr);
    assert.equal(balance.stdout, '{"user_id":"cli-balance","balances":{"total":50}}\n');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('send whose reader goes away before the end exits 1, not 0', async () => {
  const lines = Array.from(
    { length: 5_000 },
    (_, i) => `{"user_id":"${uniqueName('cli-pipe')}","amount":"0.0${1 + (i % 9)}"}`,
  );
  const child = spawn(process.execPath, [`${ROOT}src/cli.ts`, 'send', '--window', '10'], {
    env,
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  // The child stops reading its input when it exits.
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${lines.join('\n')}\n`);
  // Like `| head -1`: the first reply is read, then the pipe is closed.
  await once(child.stdout, 'data');
  child.stdout.destroy();
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 1);
});
