import assert from 'node:assert/strict';
import { TestScheduler } from 'rxjs/testing';

/**
 * A TestScheduler that compares with `node:assert/strict`, for marble tests under
 * node:test: `createMarbleScheduler().run(({ cold, expectObservable }) => …)`.
 */
export const createMarbleScheduler = (): TestScheduler =>
  new TestScheduler((actual, expected) => {
    assert.deepStrictEqual(actual, expected);
  });
