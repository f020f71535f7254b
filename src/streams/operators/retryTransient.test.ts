// Marble tests: the backoff and the deadline are purely time-based, and the sources here
// are Observables (cold('#'), defer), so virtual time checks each resubscription exactly.
import { test } from 'node:test';
import { defer, of, throwError } from 'rxjs';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import { createMarbleScheduler } from '../../testing/index.ts';
import { retryTransient } from './retryTransient.ts';

const down = new StoreUnavailableError('postgres', 'connection refused');

test('retries a retryable error with 1x, 2x, 4x backoff, capped at maxDelayMs', () => {
  createMarbleScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('#', undefined, down);
    const retried = source.pipe(
      retryTransient({ initialDelayMs: 10, maxDelayMs: 30, deadlineMs: 1000 }),
    );
    // Waits 10, 20, then 40 capped to 30, and 30 again: attempts at 0, 10, 30, 60, 90.
    expectObservable(retried, '^ 99ms !').toBe('');
    expectSubscriptions(source.subscriptions).toBe([
      '(^!)',
      '10ms (^!)',
      '30ms (^!)',
      '60ms (^!)',
      '90ms (^!)',
    ]);
  });
});

test('the value of an attempt that succeeds after retries comes through', () => {
  createMarbleScheduler().run(({ expectObservable }) => {
    let attempts = 0;
    const flaky = defer(() => {
      attempts += 1;
      return attempts < 3 ? throwError(() => down) : of('saved');
    });
    expectObservable(
      flaky.pipe(retryTransient({ initialDelayMs: 10, maxDelayMs: 100, deadlineMs: 1000 })),
    ).toBe('30ms (s|)', { s: 'saved' });
  });
});

test('gives up with the last error when the next retry would start after the deadline', () => {
  createMarbleScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('#', undefined, down);
    // Retries at 10 and 30 start by the deadline (30 included); the next would start at 70.
    expectObservable(
      source.pipe(retryTransient({ initialDelayMs: 10, maxDelayMs: 100, deadlineMs: 30 })),
    ).toBe('30ms #', undefined, down);
    expectSubscriptions(source.subscriptions).toBe(['(^!)', '10ms (^!)', '30ms (^!)']);
  });
});

test('the deadline counts from subscription, not from when the operator was built', () => {
  createMarbleScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('#', undefined, down);
    const retried = source.pipe(
      retryTransient({ initialDelayMs: 10, maxDelayMs: 100, deadlineMs: 30 }),
    );
    expectObservable(retried, '50ms ^').toBe('80ms #', undefined, down);
    expectSubscriptions(source.subscriptions).toBe(['50ms (^!)', '60ms (^!)', '80ms (^!)']);
  });
});

test('never retries an error that is not retryable', () => {
  createMarbleScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const invalid = new SpendstreamError('internal', 'constraint violated');
    const source = cold('--#', undefined, invalid);
    expectObservable(
      source.pipe(retryTransient({ initialDelayMs: 1, maxDelayMs: 1, deadlineMs: 1000 })),
    ).toBe('--#', undefined, invalid);
    expectSubscriptions(source.subscriptions).toBe('^-!');
  });
});

test('a plain Error, which says nothing about retrying, is not retried', () => {
  createMarbleScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const unknown = new Error('boom');
    const source = cold('#', undefined, unknown);
    expectObservable(
      source.pipe(retryTransient({ initialDelayMs: 1, maxDelayMs: 1, deadlineMs: 1000 })),
    ).toBe('#', undefined, unknown);
    expectSubscriptions(source.subscriptions).toBe('(^!)');
  });
});

test('values and completion pass through untouched', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const source = cold('-a-b|');
    expectObservable(
      source.pipe(retryTransient({ initialDelayMs: 1, maxDelayMs: 1, deadlineMs: 10 })),
    ).toBe('-a-b|');
  });
});
