// Names of a test's own in the shared stores — a database, topics, a consumer group, a
// Redis key prefix — each removed again when the test ends.
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createRedis, type RedisClient } from '../../src/adapters/redis/client.ts';
import type { Config } from '../../src/config.ts';
import { clearKeyPrefix, createTestDatabase } from '../helpers.ts';
import { deleteGroups, deleteTopics } from '../kafkaHelpers.ts';
import { onTeardown, type TestHooks } from './teardown.ts';

/** A new, empty PostgreSQL database, dropped at teardown; resolves with its URL. */
export const ownDatabase = async (t: TestHooks): Promise<string> => {
  const database = await createTestDatabase();
  onTeardown(t, database.drop);
  return database.url;
};

/** Deletes `topics` at teardown (whoever uses them first creates them). */
export const ownTopics = (t: TestHooks, kafka: Config['kafka'], topics: readonly string[]) => {
  onTeardown(t, () => deleteTopics(createKafka(kafka), topics));
};

/** Deletes consumer group `groupId` at teardown, once its members have left. */
export const ownGroup = (t: TestHooks, kafka: Config['kafka'], groupId: string) => {
  onTeardown(t, () => deleteGroups(createKafka(kafka), [groupId]));
};

/**
 * A Redis client (a Cluster client on a cluster) whose keys all go under `redis.keyPrefix`; at teardown every key under
 * it is deleted and the client quits. An empty prefix is refused: it would mean them all.
 */
export const ownKeyPrefix = (t: TestHooks, redis: Config['redis']): RedisClient => {
  if (redis.keyPrefix === '') throw new Error('a test needs a Redis key prefix of its own');
  // On the Redis, or the Redis Cluster, the service is configured with.
  const client = createRedis(redis);
  onTeardown(t, async () => {
    await clearKeyPrefix(client, redis.keyPrefix);
    await client.quit();
  });
  return client;
};
