import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkReadiness, coalesced, pingCheck } from './readiness.ts';

const never = () => new Promise<never>(() => undefined);

test('callers arriving while a call runs share it; the next one after it settles starts anew', async () => {
  let calls = 0;
  const shared = coalesced(async () => {
    calls += 1;
    await sleep(5);
    return calls;
  });
  assert.deepEqual(await Promise.all([shared(), shared(), shared()]), [1, 1, 1]);
  assert.equal(await shared(), 2);
});

test('a call that never settles is abandoned after its bound, so a later caller gets a fresh one', async () => {
  let calls = 0;
  let hang = true;
  const shared = coalesced(() => {
    calls += 1;
    return hang ? never() : Promise.resolve('back');
  }, 20);
  void shared();
  void shared();
  assert.equal(calls, 1, 'shared while within the bound');
  hang = false;
  await sleep(40);
  assert.equal(await shared(), 'back');
  assert.equal(calls, 2);
});

test('a ping that hangs fails its check, and the check passes again once the store answers', async () => {
  let hang = true;
  const check = pingCheck(() => (hang ? never() : Promise.resolve()), 5);
  assert.equal(await check(), false);
  hang = false;
  // Past the bound (five timeouts) the hung ping is no longer what probes wait for.
  await sleep(40);
  assert.equal(await check(), true);
});

test('readiness is ok only when every check passes; a throwing check counts as failed', async () => {
  assert.deepEqual(await checkReadiness({ a: () => true, b: () => Promise.resolve(true) }), {
    status: 'ok',
    checks: { a: 'ok', b: 'ok' },
  });
  const report = await checkReadiness({
    a: () => true,
    b: () => {
      throw new Error('down');
    },
    c: () => Promise.resolve(false),
  });
  assert.deepEqual(report, {
    status: 'unavailable',
    checks: { a: 'ok', b: 'unavailable', c: 'unavailable' },
  });
});

test('a check that passes in part is reported as partial and keeps readiness ok', async () => {
  assert.deepEqual(
    await checkReadiness({ a: () => true, b: () => Promise.resolve('partial' as const) }),
    { status: 'ok', checks: { a: 'ok', b: 'partial' } },
  );
  assert.deepEqual(await checkReadiness({ a: () => 'partial', b: () => false }), {
    status: 'unavailable',
    checks: { a: 'partial', b: 'unavailable' },
  });
});
