import assert from 'node:assert/strict';
import { test } from 'node:test';
import kafkajs, { type Admin } from 'kafkajs';
import { ensureTopic } from './topics.ts';

// kafkajs is CommonJS: its error classes come with the default export only.
const { KafkaJSProtocolError } = kafkajs;

/** A protocol error as kafkajs makes one from a broker's error code. */
const protocolError = (fields: {
  type: string;
  code: number;
  retriable: boolean;
  message: string;
}) => new KafkaJSProtocolError(Object.assign(new Error(fields.message), fields));

// What kafkajs throws while a topic just created (here or by another service starting
// beside this one) has not reached the broker answering its metadata yet.
const notHostedYet = () =>
  protocolError({
    type: 'UNKNOWN_TOPIC_OR_PARTITION',
    code: 3,
    retriable: true,
    message: 'This server does not host this topic-partition',
  });

const adminAnswering = (answers: (() => Promise<boolean>)[]) => {
  let calls = 0;
  const admin = {
    createTopics: () => {
      const answer = answers[Math.min(calls, answers.length - 1)];
      calls += 1;
      return answer ? answer() : Promise.resolve(false);
    },
    // Every partition has a leader once the topic is there.
    fetchTopicMetadata: () =>
      Promise.resolve({
        topics: [{ partitions: [0, 1, 2].map((p) => ({ partitionId: p, leader: 1 })) }],
      }),
  } as unknown as Admin;
  return { admin, calls: () => calls };
};

test('a topic not yet known to the broker answering is asked for again', async () => {
  const { admin, calls } = adminAnswering([
    () => Promise.reject(notHostedYet()),
    () => Promise.reject(notHostedYet()),
    () => Promise.resolve(false),
  ]);
  assert.equal(await ensureTopic(admin, { topic: 't', partitions: 3 }, { waitMs: 5_000 }), false);
  assert.equal(calls(), 3);
});

test('a refusal Kafka does not call retriable fails at once, translated', async () => {
  const { admin, calls } = adminAnswering([
    () =>
      Promise.reject(
        protocolError({
          type: 'INVALID_REPLICATION_FACTOR',
          code: 38,
          retriable: false,
          message: 'Replication factor is invalid',
        }),
      ),
  ]);
  await assert.rejects(ensureTopic(admin, { topic: 't', partitions: 3 }, { waitMs: 5_000 }), {
    code: 'internal',
  });
  assert.equal(calls(), 1);
});

test('retriable refusals past the wait fail, as Kafka unavailable', async () => {
  const { admin } = adminAnswering([() => Promise.reject(notHostedYet())]);
  await assert.rejects(ensureTopic(admin, { topic: 't', partitions: 3 }, { waitMs: 300 }), {
    code: 'unavailable',
  });
});
