import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drainThenDispose, failureSignal } from './lifecycle.ts';

/** A stack of three resources that log their closes, as a service's start opens them. */
const openThree = (log: string[]) => {
  const stack = new AsyncDisposableStack();
  for (const name of ['pool', 'producer', 'server']) {
    stack.defer(async () => {
      await Promise.resolve();
      log.push(`close ${name}`);
    });
  }
  return stack;
};

test('a stop drains first, then closes in reverse order of opening', async () => {
  const log: string[] = [];
  const stop = drainThenDispose(async () => {
    await Promise.resolve();
    log.push('drain');
  }, openThree(log));
  await stop();
  assert.deepEqual(log, ['drain', 'close server', 'close producer', 'close pool']);
});

test('a second stop joins the first: nothing is drained or closed twice', async () => {
  const log: string[] = [];
  const stop = drainThenDispose(() => {
    log.push('drain');
    return Promise.resolve();
  }, openThree(log));
  const first = stop();
  assert.equal(stop(), first);
  await first;
  await stop();
  assert.equal(log.filter((line) => line === 'drain').length, 1);
  assert.equal(log.length, 4);
});

test('a drain that fails still closes everything, and the stop reports the failure', async () => {
  const log: string[] = [];
  const stop = drainThenDispose(() => Promise.reject(new Error('drain failed')), openThree(log));
  await assert.rejects(stop(), /drain failed/);
  assert.deepEqual(log, ['close server', 'close producer', 'close pool']);
});

test('a failure signal settles with the error reported', async () => {
  const { failure, report } = failureSignal();
  const error = new Error('pipeline failed');
  report(error);
  assert.equal(await failure, error);
});
