// Timeouts are tested in virtual time: an attempt that never answers is a promise that
// never settles, so only the timeout and backoff timers decide what happens, and
// TestScheduler.run drives those. An attempt that does answer settles on the microtask
// queue, which does not run inside run(); those cases use real time with millisecond
// settings and await the result.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lastValueFrom } from 'rxjs';
import { SpendstreamError, StoreUnavailableError } from '../core/errors.ts';
import { createMarbleScheduler } from '../testing/index.ts';
import { callStore, type StoreCallConfig } from './callStore.ts';

const silent = <T>(): Promise<T> => new Promise<T>(() => {});

const virtualConfig: StoreCallConfig = {
  attemptTimeoutMs: 5,
  retry: { initialDelayMs: 10, maxDelayMs: 100, deadlineMs: 40 },
};

// Generous deadline, tiny delays: a retry expected to happen happens even on a busy
// machine, where timers may fire tens of milliseconds late.
const fastConfig: StoreCallConfig = {
  attemptTimeoutMs: 20,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

// For giving up: a short deadline keeps the test quick.
const shortConfig: StoreCallConfig = {
  attemptTimeoutMs: 20,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 50 },
};

test('the store is called only on subscription, once per attempt', () => {
  let calls = 0;
  const call$ = callStore(
    'postgres',
    () => {
      calls += 1;
      return silent<void>();
    },
    virtualConfig,
  );
  assert.equal(calls, 0);
  call$.subscribe({ error: () => {} }).unsubscribe();
  assert.equal(calls, 1);
});

test('an attempt that never answers times out and is retried; at the deadline it gives up', () => {
  const scheduler = createMarbleScheduler();
  const attemptsAt: number[] = [];
  scheduler.run(({ expectObservable }) => {
    const call$ = callStore(
      'kafka',
      () => {
        attemptsAt.push(scheduler.now());
        return silent<void>();
      },
      virtualConfig,
    );
    // Attempts at 0, 15 (5 ms timeout + 10 ms backoff) and 40 (+5, +20: at the deadline);
    // the next would start at 85, past the 40 ms deadline, so the third timeout is final.
    expectObservable(call$).toBe(
      '45ms #',
      undefined,
      new StoreUnavailableError('kafka', 'kafka did not answer within 5 ms'),
    );
  });
  assert.deepEqual(attemptsAt, [0, 15, 40]);
});

test('the timeout error is a retryable StoreUnavailableError naming the store', async () => {
  const config = {
    attemptTimeoutMs: 1,
    retry: { ...fastConfig.retry, deadlineMs: 0 },
  };
  await assert.rejects(lastValueFrom(callStore('postgres', silent<void>, config)), (error) => {
    assert.ok(error instanceof StoreUnavailableError);
    assert.equal(error.code, 'unavailable');
    assert.equal(error.store, 'postgres');
    assert.equal(error.retryable, true);
    return true;
  });
});

test('the answer of an attempt retried after a timeout comes through', async () => {
  let calls = 0;
  const answer = await lastValueFrom(
    callStore(
      'postgres',
      () => {
        calls += 1;
        return calls === 1 ? silent<string>() : Promise.resolve('saved');
      },
      fastConfig,
    ),
  );
  assert.equal(answer, 'saved');
  assert.equal(calls, 2);
});

test('a retryable rejection is retried', async () => {
  let calls = 0;
  const answer = await lastValueFrom(
    callStore(
      'postgres',
      () => {
        calls += 1;
        return calls < 3
          ? Promise.reject(new StoreUnavailableError('postgres', 'connection reset'))
          : Promise.resolve('saved');
      },
      fastConfig,
    ),
  );
  assert.equal(answer, 'saved');
  assert.equal(calls, 3);
});

test('a store that keeps failing is given up on with its own last error', async () => {
  let calls = 0;
  const down = new StoreUnavailableError('postgres', 'connection refused');
  await assert.rejects(
    lastValueFrom(
      callStore(
        'postgres',
        () => {
          calls += 1;
          return Promise.reject(down);
        },
        shortConfig,
      ),
    ),
    (error) => error === down,
  );
  assert.ok(calls > 1, `retried (${calls} calls)`);
});

test('a rejection that is not retryable fails at once, unchanged', async () => {
  let calls = 0;
  const broken = new SpendstreamError('internal', 'check constraint violated');
  await assert.rejects(
    lastValueFrom(
      callStore(
        'postgres',
        () => {
          calls += 1;
          return Promise.reject(broken);
        },
        fastConfig,
      ),
    ),
    (error) => error === broken,
  );
  assert.equal(calls, 1);
});
