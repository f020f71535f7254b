import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { groupBySlot, keySlot } from './nodes.ts';

// Neither client connects: groupBySlot only reads which kind of client it is given.
const single = new Redis({ lazyConnect: true });
const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });

test('no keys make no group, on one Redis and on a Cluster: a multi-key command needs one', () => {
  assert.deepEqual(groupBySlot(single, []), []);
  assert.deepEqual(groupBySlot(cluster, []), []);
});

test('keys are one group on one Redis, one group per slot on a Cluster', () => {
  const keys = ['wallet:{b1}:a', 'wallet:{b2}:b', 'wallet:bucket:{b1}'];
  assert.deepEqual(groupBySlot(single, keys), [keys]);
  assert.equal(keySlot(keys[0] ?? ''), keySlot(keys[2] ?? ''));
  assert.deepEqual(groupBySlot(cluster, keys), [
    ['wallet:{b1}:a', 'wallet:bucket:{b1}'],
    ['wallet:{b2}:b'],
  ]);
});
