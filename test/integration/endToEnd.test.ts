// The whole system in one place: purchases over WebSocket, totals over gRPC.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Config } from '../../src/config.ts';
import type { IngestService } from '../../src/services/ingestService.ts';
import { centsToDecimal } from '../../src/core/purchase.ts';
import type { WalletService } from '../../src/services/walletService.ts';
import { ROOT } from '../../scripts/infra.ts';
import type { WalletClient } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { startSystem } from '../harness/services.ts';
import { childEnv } from '../helpers.ts';
import { connectClient, type Reply } from '../wsClient.ts';

let config: Config;
let ingest: IngestService;
let wallet: WalletService;
let client: WalletClient;

before(async (t) => {
  const system = await startSystem(t);
  ({ config } = system);
  ingest = system.ingest.service;
  wallet = system.wallet.service;
  client = system.wallet.client;
});

/** Polls GetBalance until it shows `cents`; returns how long that took. */
const visible = async (userId: string, cents: number): Promise<number> => {
  const started = Date.now();
  const want = Number(centsToDecimal(cents));
  await eventually(
    `${userId} showing ${want}`,
    async () => (await client.getBalance(userId)).balances['total'] === want,
    { intervalMs: 20 },
  );
  return Date.now() - started;
};

test('a purchase acked over WebSocket shows up in GetBalance', async () => {
  const socket = await connectClient(`ws://127.0.0.1:${ingest.port}${config.ws.path}`);
  socket.send('{"user_id": "e2e-123", "amount": 49.99}');
  assert.equal((await socket.next()).status, 'ack');
  const ms = await visible('e2e-123', 4_999);
  process.stdout.write(`# ack to GetBalance: ${ms} ms\n`);
  assert.deepEqual(await client.getBalance('e2e-123'), { balances: { total: 49.99 } });
  await socket.close();
});

test('the sum over many purchases from many clients is exact to the cent', async () => {
  const sockets = await Promise.all(
    [0, 1, 2].map(() => connectClient(`ws://127.0.0.1:${ingest.port}/ws`)),
  );
  const expected = new Map<string, number>();
  await Promise.all(
    sockets.map(async (socket, s) => {
      let frames = 0;
      for (let i = 0; i < 1_000; i += 50) {
        socket.send(
          Array.from({ length: 50 }, (_, k) => {
            const n = s * 10_000 + i + k;
            const user = `e2e-user-${n % 41}`;
            const cents = 1 + ((n * 613) % 9_999); // cents such as 0.01, 0.07, 99.99
            expected.set(user, (expected.get(user) ?? 0) + cents);
            return { user_id: user, amount: centsToDecimal(cents) };
          }),
        );
        frames += 1;
      }
      const replies = await socket.take(frames, 60_000);
      assert.ok(replies.every((reply: Reply) => reply.acked === 50));
      await socket.close();
    }),
  );
  for (const [user, cents] of expected) await visible(user, cents);
});

test('the wallet health check script reports SERVING', async () => {
  // As the container's health check runs it: a few tries, each its own process, exit 0
  // once SERVING (a wallet still joining its group answers NOT_SERVING and exit 1).
  const check = () =>
    promisify(execFile)(process.execPath, [`${ROOT}src/walletHealthcheck.ts`], {
      env: childEnv({ GRPC_PORT: String(wallet.grpcPort) }),
    }).then(
      ({ stdout }) => stdout.trim(),
      (error: { code?: number; stdout?: string }) => {
        assert.equal(error.code, 1, 'a failed check exits 1');
        return error.stdout?.trim() ?? '';
      },
    );
  const seen: string[] = [];
  for (let attempt = 0; attempt < 5 && seen.at(-1) !== 'SERVING'; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 1_000));
    seen.push(await check());
  }
  assert.equal(seen.at(-1), 'SERVING', `answers: ${seen.join(', ')}`);
});
