// History for the rebuild bench: purchases written straight to the topic, encoded and
// partitioned as the ingest publishes them, so a wallet replays them like real ones, with
// every user's total kept as the records are made.
import type { Message, Producer } from 'kafkajs';
import { createKafka } from '../src/adapters/kafka/client.ts';
import { partitionForKey } from '../src/adapters/kafka/partitioner.ts';
import { createIdempotentProducer } from '../src/adapters/kafka/producer.ts';
import { ensureTopic } from '../src/adapters/kafka/topics.ts';
import { encodePurchaseEvent, PURCHASE_ID_HEADER } from '../src/core/purchaseEvent.ts';

/** Where the history goes, named as the services name it. */
export interface HistoryTopic {
  readonly brokers: readonly string[];
  readonly topic: string;
  /** As the services create it: `KAFKA_TOPIC_PARTITIONS`. */
  readonly partitions: number;
  /** As the services create it: `KAFKA_TOPIC_RETENTION_MS`. */
  readonly retentionMs: number;
}

/** A run of purchases to append: `records` of them over users `${userPrefix}0 … users-1`. */
export interface HistoryRun {
  readonly records: number;
  readonly users: number;
  readonly userPrefix: string;
  /** Prefix of the purchase ids, unique per run. */
  readonly idPrefix: string;
}

/** What the topic holds so far: each user's total in cents, and how many records. */
export interface History {
  readonly totals: Map<string, number>;
  records: number;
}

/** Records per partition in one send: ~110 bytes each stays well under 1 MiB a batch. */
const PER_PARTITION = 4_000;
/** Sends queued at once (the producer has one request in flight): encoding overlaps it. */
const IN_FLIGHT = 3;

/** An empty {@link History}. */
export const emptyHistory = (): History => ({ totals: new Map(), records: 0 });

/** The cents of the `sequence`th purchase: 0.01 to 99.99, spread, exact. */
const centsOf = (sequence: number) => 1 + ((sequence * 7_919) % 9_999);

/** Creates the topic as the ingest and the wallet do when it is missing. */
export const ensureHistoryTopic = async (target: HistoryTopic): Promise<void> => {
  const admin = createKafka({ brokers: target.brokers, clientId: 'spendstream-bench' }).admin();
  await admin.connect();
  try {
    await ensureTopic(admin, {
      topic: target.topic,
      partitions: target.partitions,
      configs: { 'retention.ms': String(target.retentionMs) },
    });
  } finally {
    await admin.disconnect();
  }
};

/**
 * Appends `run` to the topic in large acknowledged sends (`acks=all`), keyed by user and
 * partitioned as the ingest partitions, and adds each purchase to `history`. Resolves with
 * the records written per second.
 */
export const appendHistory = async (
  target: HistoryTopic,
  run: HistoryRun,
  history: History,
): Promise<number> => {
  const kafka = createKafka({ brokers: target.brokers, clientId: 'spendstream-bench' });
  // Idempotent, as the ingest's: a retried send must not append a purchase twice.
  const producer = createIdempotentProducer(kafka);
  await producer.connect();
  const partitionOf = Array.from({ length: run.users }, (_, user) =>
    partitionForKey(`${run.userPrefix}${user}`, target.partitions),
  );
  const startedAt = performance.now();
  try {
    const sends = new Set<Promise<void>>();
    // Users take turns, so the partition with the most users gets the most records of a
    // send: it is the one kept under the limit.
    const usersOf = new Map<number, number>();
    for (const partition of partitionOf) usersOf.set(partition, (usersOf.get(partition) ?? 0) + 1);
    const busiest = Math.max(...usersOf.values()) / run.users;
    const perSend = Math.max(1, Math.floor(PER_PARTITION / busiest));
    for (let from = 0; from < run.records; from += perSend) {
      const messages = messagesOf(
        run,
        history,
        partitionOf,
        from,
        Math.min(run.records, from + perSend),
      );
      const send = sendAll(producer, target.topic, messages).finally(() => sends.delete(send));
      sends.add(send);
      if (sends.size >= IN_FLIGHT) await Promise.race(sends);
    }
    await Promise.all(sends);
  } finally {
    await producer.disconnect();
  }
  history.records += run.records;
  return Math.round(run.records / ((performance.now() - startedAt) / 1_000));
};

const messagesOf = (
  run: HistoryRun,
  history: History,
  partitionOf: readonly number[],
  from: number,
  to: number,
): Message[] => {
  const messages: Message[] = [];
  for (let i = from; i < to; i += 1) {
    const sequence = history.records + i;
    const user = i % run.users;
    const userId = `${run.userPrefix}${user}`;
    const id = `${run.idPrefix}-${String(i).padStart(10, '0')}`;
    const amountCents = centsOf(sequence);
    history.totals.set(userId, (history.totals.get(userId) ?? 0) + amountCents);
    messages.push({
      key: userId,
      partition: partitionOf[user] ?? 0,
      value: encodePurchaseEvent({ id, userId, amountCents }),
      headers: { [PURCHASE_ID_HEADER]: id },
    });
  }
  return messages;
};

const sendAll = async (producer: Producer, topic: string, messages: Message[]): Promise<void> => {
  await producer.send({ topic, acks: -1, messages });
};
