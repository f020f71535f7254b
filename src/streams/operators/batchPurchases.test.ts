// Marble tests: batching is purely time-based, so virtual time (TestScheduler.run, which
// also drives the default asyncScheduler) checks every cut to the millisecond.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Subject } from 'rxjs';
import { createMarbleScheduler } from '../../testing/index.ts';
import { batchPurchases } from './batchPurchases.ts';

test('a batch is cut as soon as it holds maxSize elements', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const source = cold('-abcde-fg 100ms |');
    expectObservable(source.pipe(batchPurchases({ maxSize: 3, maxWaitMs: 50 }))).toBe(
      '---x---y 49ms z 51ms |',
      { x: ['a', 'b', 'c'], y: ['d', 'e', 'f'], z: ['g'] },
    );
  });
});

test('a batch is cut after maxWaitMs even when it is not full', () => {
  createMarbleScheduler().run(({ cold, expectObservable, time }) => {
    const wait = time('----------|');
    const source = cold('-a-b--------c----------|');
    expectObservable(source.pipe(batchPurchases({ maxSize: 100, maxWaitMs: wait }))).toBe(
      '----------x---------y--|',
      { x: ['a', 'b'], y: ['c'] },
    );
  });
});

test('no element waits longer than maxWaitMs', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    // The clock runs from the last cut, not from the first element: `b`, arriving late
    // in a window, leaves with the window, sooner than maxWaitMs after its arrival.
    const source = cold('a 7ms b 30ms |');
    expectObservable(source.pipe(batchPurchases({ maxSize: 100, maxWaitMs: 10 }))).toBe(
      '10ms x 28ms |',
      { x: ['a', 'b'] },
    );
  });
});

test('idle periods emit nothing: no empty batches on idle ticks', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const source = cold('a 95ms b 10ms |');
    expectObservable(source.pipe(batchPurchases({ maxSize: 100, maxWaitMs: 10 }))).toBe(
      '10ms x 89ms y 6ms |',
      { x: ['a'], y: ['b'] },
    );
  });
});

test('completion flushes the open batch at once, then completes', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const source = cold('-ab|');
    expectObservable(source.pipe(batchPurchases({ maxSize: 100, maxWaitMs: 1000 }))).toBe(
      '---(x|)',
      { x: ['a', 'b'] },
    );
  });
});

test('completion with nothing open completes without an empty batch', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const source = cold('-abc--|');
    expectObservable(source.pipe(batchPurchases({ maxSize: 3, maxWaitMs: 1000 }))).toBe('---x--|', {
      x: ['a', 'b', 'c'],
    });
  });
});

test('an error passes through at once; the open batch is dropped, not emitted', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const error = new Error('socket closed');
    const source = cold('-abc--#', undefined, error);
    expectObservable(source.pipe(batchPurchases({ maxSize: 2, maxWaitMs: 1000 }))).toBe(
      '--x---#',
      { x: ['a', 'b'] },
      error,
    );
  });
});

test('time cuts wait on the given scheduler', () => {
  // Outside run() only the scheduler passed in is virtual: were it ignored, the cut would
  // wait on a real 5 ms timer and nothing would have arrived by the assertion.
  const scheduler = createMarbleScheduler();
  const source = new Subject<string>();
  const batches: string[][] = [];
  const subscription = source
    .pipe(batchPurchases({ maxSize: 10, maxWaitMs: 5, scheduler }))
    .subscribe((batch) => batches.push(batch));
  source.next('a');
  scheduler.flush();
  subscription.unsubscribe();
  assert.deepEqual(batches, [['a']]);
});
