import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRestartPolicy } from './restartPolicy.ts';

const config = { initialDelayMs: 100, maxDelayMs: 300, stableAfterMs: 1_000, maxQuickDeaths: 4 };

test('quick deaths double the wait up to the most, then give up', () => {
  const policy = createRestartPolicy(config);
  assert.deepEqual(policy.died(1, 10), { restart: true, delayMs: 100, quickDeaths: 1 });
  assert.deepEqual(policy.died(1, 10), { restart: true, delayMs: 200, quickDeaths: 2 });
  assert.deepEqual(policy.died(1, 10), { restart: true, delayMs: 300, quickDeaths: 3 });
  assert.deepEqual(policy.died(1, 10), { restart: false, quickDeaths: 4 });
});

test('a worker that ran long enough clears its slot count', () => {
  const policy = createRestartPolicy(config);
  policy.died(1, 10);
  policy.died(1, 10);
  assert.deepEqual(policy.died(1, 5_000), { restart: true, delayMs: 100, quickDeaths: 1 });
});

test('slots are counted apart', () => {
  const policy = createRestartPolicy(config);
  policy.died(1, 10);
  policy.died(1, 10);
  assert.deepEqual(policy.died(2, 10), { restart: true, delayMs: 100, quickDeaths: 1 });
});
