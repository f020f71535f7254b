// The status page in a real browser against a real ingest and wallet: Debian's Chromium
// driven by playwright-core, which brings no browser of its own.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../../scripts/infra.ts';
import { eventually } from '../harness/eventually.ts';
import { startIngest, startWallet, type StartedIngest } from '../harness/services.ts';
import { uniqueName } from '../helpers.ts';
import { connectClient } from '../wsClient.ts';
import { chromium as chromiumTool, locate, needs } from '../outsideTools.ts';

// Without these, Chromium reaches for Google's services and this closed network refuses it.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = join(ROOT, 'test-results', 'status-page.png');

const topic = uniqueName('test_status');
let ingest: StartedIngest;
let profile: string;
let context: BrowserContext;
let page: Page;
let base: string;
/** Console errors and uncaught exceptions of the page, and any request off its origin. */
const problems: string[] = [];
// Without Chromium every test here is skipped, naming the install command.
const browser = await needs(chromiumTool);

before(async (t) => {
  if (browser.skip !== undefined) return;
  const wallet = await startWallet(t, { KAFKA_TOPIC: topic, WALLET_HTTP_PORT: '0' });
  ingest = await startIngest(t, {
    KAFKA_TOPIC: topic,
    WALLET_GRPC_ADDRESS: `127.0.0.1:${wallet.service.grpcPort}`,
  });
  base = `http://127.0.0.1:${ingest.service.port}`;
  profile = await mkdtemp(join(tmpdir(), 'spendstream-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: (await locate(chromiumTool))[0],
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.host !== new URL(base).host && url.protocol !== 'data:') {
      problems.push(`request off the page's origin: ${request.url()}`);
    }
  });
});

after(async () => {
  if (page !== undefined) {
    await mkdir(join(ROOT, 'test-results'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }
  await context?.close();
  if (profile !== undefined) await rm(profile, { recursive: true, force: true });
});

/** A figure of the live tiles as a number (`—` reads as NaN). */
const figure = async (id: string) =>
  Number((await page.locator(`#${id}`).textContent())?.replaceAll(',', '') ?? NaN);

/** Sends a purchase from the form; resolves with the id it went under and the reply shown. */
const sendFromForm = async (userId: string, amount: string) => {
  await page.getByLabel('User id', { exact: true }).first().fill(userId);
  await page.getByLabel('Amount').fill(amount);
  const id = await page.getByLabel('Purchase id').inputValue();
  // The reply to a resend under the same id shows the same id: this send's reply is the
  // one that puts a new line at the top of the log.
  // Marks the line on top now (an expression the page evaluates: no DOM types here).
  await page.evaluate("document.querySelector('#purchase-log li')?.setAttribute('data-seen', '')");
  await page.getByRole('button', { name: 'Send purchase' }).click();
  await page.locator('#purchase-log li:first-child:not([data-seen])').waitFor({ timeout: 15_000 });
  const result = page.locator('#purchase-result');
  await result.filter({ hasText: id }).waitFor({ timeout: 15_000 });
  return {
    id,
    text: (await result.textContent()) ?? '',
    status: await result.getAttribute('data-status'),
  };
};

test('the page loads from the service alone, with no console errors', browser, async () => {
  const response = await page.goto(`${base}/`);
  assert.equal(response?.status(), 200);
  await page.getByRole('heading', { name: 'spendstream' }).waitFor();
  // The first scrape has landed once the service's state reads Ready.
  await page.locator('#service-state', { hasText: 'Ready' }).waitFor({ timeout: 10_000 });
  assert.equal(
    await page.locator('#ws-url').textContent(),
    `ws://127.0.0.1:${ingest.service.port}/ws`,
  );
  assert.notEqual(await page.locator('#connections').textContent(), '—');
  assert.deepEqual(problems, []);
});

test('a purchase sent from the form shows its ack under its id', browser, async () => {
  const { id, text, status } = await sendFromForm('page-alice', '12.34');
  assert.equal(status, 'ack');
  assert.match(text, /^ack\b/);
  assert.match(text, /12\.34 for page-alice/);
  // The next purchase gets a key of its own.
  assert.notEqual(await page.getByLabel('Purchase id').inputValue(), id);
});

test('the live figures show the purchases sent', browser, async () => {
  const client = await connectClient(ingest.url);
  const frame = Array.from({ length: 25 }, (_, i) => ({
    id: `status-live-${topic}-${i}`,
    user_id: 'page-live',
    amount: '1.00',
  }));
  client.send(frame);
  assert.equal((await client.next()).acked, 25);
  await eventually('the acked count reaching 26', async () => (await figure('acked')) >= 26);
  assert.ok((await figure('connections')) >= 2, 'the page and the test client are connected');
  // Rate and latency cover the last second between two reads of /metrics: purchases keep
  // coming until a second with acks in it has been shown.
  let sent = 0;
  await eventually('purchases/s and the ack latencies showing that traffic', async () => {
    sent += 1;
    client.send({ id: `status-live-${topic}-more-${sent}`, user_id: 'page-live', amount: '1.00' });
    assert.equal((await client.next()).status, 'ack');
    const latencies = await Promise.all(
      ['p50', 'p99'].map(async (id) => (await page.locator(`#${id}`).textContent()) ?? ''),
    );
    return (await figure('rate')) > 0 && latencies.every((text) => /^[\d.]+ ms$/.test(text));
  });
  await client.close();
});

test('the balance lookup shows the exact total', browser, async () => {
  const amounts = ['12.34', '0.66', '100.01', '0.10', '0.07'];
  for (const amount of amounts)
    assert.equal((await sendFromForm('page-bob', amount)).status, 'ack');
  const balanceUser = page.locator('#balance-user');
  await balanceUser.fill('page-bob');
  const result = page.locator('#balance-result');
  // The wallet applies purchases a moment after their acks.
  await eventually(
    'the total reaching 113.18',
    async () => {
      await page.getByRole('button', { name: 'Look up balance' }).click();
      await result.locator('p').waitFor();
      return ((await result.textContent()) ?? '').includes('113.18');
    },
    { timeoutMs: 30_000 },
  );
  assert.equal(await result.textContent(), 'Total for page-bob: 113.18');
  assert.equal(await result.getAttribute('data-status'), 'ok');
});

test(
  'an invalid amount shows invalid_purchase and keeps the id for the corrected send',
  browser,
  async () => {
    const { id, text, status } = await sendFromForm('page-carol', '1.234');
    assert.equal(status, 'invalid_purchase');
    assert.match(text, /^invalid_purchase\b/);
    assert.match(text, /field amount/);
    assert.equal(await page.getByLabel('Purchase id').inputValue(), id);
    // Nothing was stored under it, so the corrected purchase goes under the same key.
    const corrected = await sendFromForm('page-carol', '1.23');
    assert.equal(corrected.id, id);
    assert.equal(corrected.status, 'ack');
  },
);

test('markup in a user id is shown as text, never run', browser, async () => {
  const userId = `<img src=x onerror="window.__xss=1">${uniqueName('x')}`;
  const { status, text } = await sendFromForm(userId, '1.00');
  assert.equal(status, 'ack');
  assert.ok(text.includes(userId), 'the reply shows the user id literally');
  await page.locator('#balance-user').fill(userId);
  await page.getByRole('button', { name: 'Look up balance' }).click();
  await eventually('the balance of the marked-up user', async () =>
    ((await page.locator('#balance-result').textContent()) ?? '').includes(userId),
  );
  assert.equal(await page.locator('img').count(), 0, 'no element made from the id');
  assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
});

// Last: a handler the page's CSP refused would show up here as a console error.
test('nothing on the page logged an error or left its origin', browser, () => {
  assert.deepEqual(problems, []);
});
