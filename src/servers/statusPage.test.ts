import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../logger.ts';
import { startHttpServer, type HttpServer } from './http.ts';
import { createStatusPageRoutes } from './statusPage.ts';

const failures: Record<string, { code: number; details: string }> = {
  bad: { code: status.INVALID_ARGUMENT, details: 'user_id must not be empty' },
  down: { code: status.UNAVAILABLE, details: 'No connection established' },
  slow: { code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' },
  broken: { code: status.INTERNAL, details: 'internal error' },
};
const calls: Array<{ userId: string; deadlineMs: number | undefined }> = [];

let server: HttpServer;
let base: string;

before(async () => {
  const wallet = {
    getBalance: (userId: string, deadlineMs?: number) => {
      calls.push({ userId, deadlineMs });
      const failure = failures[userId];
      return failure === undefined
        ? Promise.resolve({ balances: { total: 49.99 } })
        : Promise.reject(Object.assign(new Error(failure.details), failure));
    },
  };
  const routes = createStatusPageRoutes({
    wallet,
    wsPath: '/purchases',
    logger: createLogger('error'),
    balanceDeadlineMs: 750,
  });
  server = await startHttpServer({ host: '127.0.0.1', port: 0 }, routes, createLogger('error'));
  base = `http://127.0.0.1:${server.port}`;
});

after(() => server.close());

test('the page is served at / and /status, locked to its own origin', async () => {
  for (const path of ['/', '/status']) {
    const response = await fetch(`${base}${path}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(response.headers.get('cache-control'), 'no-cache');
    assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.match(await response.text(), /<script type="module" src="status\/status\.js">/);
  }
});

test('each asset has its content type and revalidates with its ETag', async () => {
  const types = {
    '/status/status.js': 'text/javascript; charset=utf-8',
    '/status/metricsText.js': 'text/javascript; charset=utf-8',
    '/status/status.css': 'text/css; charset=utf-8',
  };
  for (const [path, type] of Object.entries(types)) {
    const response = await fetch(`${base}${path}`);
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get('content-type'), type);
    assert.equal(response.headers.get('cache-control'), 'no-cache');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    const etag = response.headers.get('etag');
    assert.ok(etag !== null && (await response.text()).length > 0);
    const again = await fetch(`${base}${path}`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
  }
  // Only the page's files are served, not whatever else sits in the folder.
  assert.equal((await fetch(`${base}/status/metricsText.test.ts`)).status, 404);
  assert.equal((await fetch(`${base}/status/index.html`)).status, 404);
});

test('the page and its files are read-only', async () => {
  const response = await fetch(`${base}/`, { method: 'POST', body: 'x' });
  assert.equal(response.status, 405);
  assert.equal(response.headers.get('allow'), 'GET, HEAD');
  assert.equal((await fetch(`${base}/status/status.css`, { method: 'HEAD' })).status, 200);
});

test('the config names the WebSocket path', async () => {
  const response = await fetch(`${base}/api/config`);
  assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(await response.json(), { ws_path: '/purchases' });
});

test('a balance comes from the wallet, within the deadline', async () => {
  const response = await fetch(`${base}/api/balance?user_id=${encodeURIComponent('a b&c')}`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.deepEqual(await response.json(), { user_id: 'a b&c', balances: { total: 49.99 } });
  assert.deepEqual(calls.at(-1), { userId: 'a b&c', deadlineMs: 750 });
});

test('wallet failures become stable codes and HTTP statuses', async () => {
  const cases = [
    ['bad', 400, 'invalid_user_id'],
    ['down', 503, 'unavailable'],
    ['slow', 503, 'unavailable'],
    ['broken', 502, 'internal'],
  ] as const;
  for (const [userId, httpStatus, code] of cases) {
    const response = await fetch(`${base}/api/balance?user_id=${userId}`);
    assert.equal(response.status, httpStatus, userId);
    const body = (await response.json()) as { code: string; message: string };
    assert.equal(body.code, code);
    assert.ok(body.message.length > 0);
    if (httpStatus === 503) assert.equal(response.headers.get('retry-after'), '1');
  }
  // The wallet's reason for a refused id reaches the page as it is.
  const refused = await fetch(`${base}/api/balance?user_id=bad`);
  assert.equal(
    ((await refused.json()) as { message: string }).message,
    'user_id must not be empty',
  );
});

test('a lookup without user_id is refused without asking the wallet', async () => {
  const before = calls.length;
  const response = await fetch(`${base}/api/balance`);
  assert.equal(response.status, 400);
  assert.deepEqual(await response.json(), {
    code: 'invalid_user_id',
    message: 'user_id is required',
  });
  assert.equal(calls.length, before);
});
