import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../core/errors.ts';
import { replicationShortfalls, targetReplication } from './durableTopics.ts';

const unset = { replicationFactor: undefined, minInsyncReplicas: undefined };

test('by default topics get the fewer of 3 and the brokers, and one less in sync', () => {
  assert.deepEqual(targetReplication(unset, 1), { replicationFactor: 1, minInsyncReplicas: 1 });
  assert.deepEqual(targetReplication(unset, 2), { replicationFactor: 2, minInsyncReplicas: 1 });
  assert.deepEqual(targetReplication(unset, 3), { replicationFactor: 3, minInsyncReplicas: 2 });
  assert.deepEqual(targetReplication(unset, 7), { replicationFactor: 3, minInsyncReplicas: 2 });
});

test('settings replace the defaults, and a min ISR follows a set replication factor', () => {
  const five = { ...unset, replicationFactor: 5 };
  assert.deepEqual(targetReplication(five, 7), { replicationFactor: 5, minInsyncReplicas: 4 });
  const both = { replicationFactor: 3, minInsyncReplicas: 3 };
  assert.deepEqual(targetReplication(both, 3), { replicationFactor: 3, minInsyncReplicas: 3 });
  const isr = { ...unset, minInsyncReplicas: 3 };
  assert.deepEqual(targetReplication(isr, 4), { replicationFactor: 3, minInsyncReplicas: 3 });
});

test('a min ISR above the replication factor the cluster gives is refused', () => {
  assert.throws(
    () => targetReplication({ ...unset, minInsyncReplicas: 2 }, 1),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.variables.includes('KAFKA_MIN_INSYNC_REPLICAS') &&
      /more than the replication factor 1/.test(error.message),
  );
});

test('a topic falls short on fewer replicas or a lower min ISR, not on more', () => {
  const target = { replicationFactor: 3, minInsyncReplicas: 2 };
  assert.deepEqual(replicationShortfalls(target, target), []);
  assert.deepEqual(
    replicationShortfalls({ replicationFactor: 5, minInsyncReplicas: 3 }, target),
    [],
  );
  assert.deepEqual(replicationShortfalls({ replicationFactor: 1, minInsyncReplicas: 1 }, target), [
    '1 replica(s) per partition where the replication factor is 3',
    'min.insync.replicas=1 where 2 is configured',
  ]);
  assert.deepEqual(replicationShortfalls({ replicationFactor: 3, minInsyncReplicas: 1 }, target), [
    'min.insync.replicas=1 where 2 is configured',
  ]);
});
