import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combineReadiness } from './readiness.ts';

const ready = { status: 'ok', checks: { postgres: 'ok', kafka: 'ok' } } as const;

test('every worker ready makes the service ready', () => {
  assert.deepEqual(combineReadiness([ready, ready], 2), {
    status: 'ok',
    checks: { postgres: 'ok', kafka: 'ok', workers: 'ok' },
  });
});

test('a check failing in one worker fails for the service', () => {
  const down = { status: 'unavailable', checks: { postgres: 'unavailable', kafka: 'ok' } } as const;
  assert.deepEqual(combineReadiness([ready, down], 2), {
    status: 'unavailable',
    checks: { postgres: 'unavailable', kafka: 'ok', workers: 'ok' },
  });
});

test('a partial check stays partial and the service ready', () => {
  const partial = { status: 'ok', checks: { buckets: 'partial' } } as const;
  const whole = { status: 'ok', checks: { buckets: 'ok' } } as const;
  assert.deepEqual(combineReadiness([whole, partial], 2), {
    status: 'ok',
    checks: { buckets: 'partial', workers: 'ok' },
  });
});

test('a worker missing (restarting) is partial: the others serve', () => {
  assert.deepEqual(combineReadiness([ready], 2).checks['workers'], 'partial');
  assert.equal(combineReadiness([ready], 2).status, 'ok');
  assert.equal(combineReadiness([], 2).status, 'unavailable');
});
