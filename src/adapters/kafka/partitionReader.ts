import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { StoreUnavailableError } from '../../core/errors.ts';
import type { PartitionPage, PartitionReader } from '../../core/ports.ts';
import { translateKafkaError } from './client.ts';

/** Settings of {@link createPartitionReader}. */
export interface PartitionReaderConfig {
  readonly kafka: Kafka;
  /** Longest a read waits for its next fetch before it fails as unavailable (30 s). */
  readonly idleTimeoutMs?: number;
  /** Start of the throw-away consumer groups' names (`spendstream-wallet-repair`). */
  readonly groupPrefix?: string;
}

// A fetch held while its page is applied must not cost the throw-away group its member.
const HEARTBEAT_EVERY_MS = 3_000;

/** A page waiting for the reader's caller, and how to tell its fetch it was taken. */
interface Offered {
  readonly page: PartitionPage;
  readonly taken: () => void;
}

const lowWatermark = async (kafka: Kafka, topic: string, partition: number): Promise<bigint> => {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topic);
    return BigInt(offsets.find((o) => o.partition === partition)?.low ?? '0');
  } catch (error) {
    throw translateKafkaError(error);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
};

/**
 * Reads `[from, to)` of one partition through a throw-away consumer group (kafkajs seeks
 * only within a group), one page per fetch, each fetch held until its page is taken.
 * Offsets are not contiguous: transaction markers and aborted records take offsets the
 * consumer never shows, and a fetch of nothing else reaches no `eachBatch`; kafkajs still
 * reports such a fetch as processed, which is how a range ending in markers ends.
 */
async function* readPartition(
  kafka: Kafka,
  topic: string,
  partition: number,
  range: { readonly from: bigint; readonly to: bigint },
  { idleTimeoutMs, groupPrefix }: { readonly idleTimeoutMs: number; readonly groupPrefix: string },
): AsyncGenerator<PartitionPage> {
  const { to } = range;
  let cursor = range.from;
  if (cursor >= to) return;
  // Below the low watermark there is nothing to read (retention removed it); a seek there
  // would be out of range.
  const low = await lowWatermark(kafka, topic, partition);
  if (low > cursor) cursor = low;
  if (cursor >= to) {
    yield { records: [], next: to.toString() };
    return;
  }
  const start = cursor;
  const queue: Offered[] = [];
  const holding = new Set<() => void>();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };

  /**
   * Takes the fetch of `[first, last]` if it is the next one: one that begins before the
   * cursor was taken already, and one at or past `to` came before the seek.
   */
  const offer = (
    first: string | null,
    last: string,
    records: PartitionPage['records'],
  ): Promise<void> | undefined => {
    if (first === null || BigInt(first) < cursor || BigInt(first) >= to) return undefined;
    const after = BigInt(last) + 1n;
    const next = after < to ? after : to;
    const page: PartitionPage = {
      records: records.filter(({ offset }) => BigInt(offset) >= cursor && BigInt(offset) < to),
      next: next.toString(),
    };
    cursor = next;
    const taken = Promise.withResolvers<void>();
    holding.add(taken.resolve);
    queue.push({
      page,
      taken: () => {
        holding.delete(taken.resolve);
        taken.resolve();
      },
    });
    notify();
    return taken.promise;
  };

  const groupId = `${groupPrefix}-${randomUUID()}`;
  let consumer: Consumer | undefined;
  try {
    consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
    const fail = (error: unknown) => {
      failure ??= translateKafkaError(error);
      notify();
    };
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) fail(payload.error);
    });
    // A fetch of nothing but markers or aborted records: no eachBatch, only this event.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.topic !== topic || payload.partition !== partition) return;
      if (payload.batchSize > 0) return;
      void offer(payload.firstOffset, payload.lastOffset, []);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: false });
    const running = consumer.run({
      autoCommit: false,
      eachBatch: async (payload) => {
        const { batch } = payload;
        if (batch.partition !== partition) return;
        const records = batch.messages.map((message) => ({
          offset: message.offset,
          key: message.key === null ? null : message.key.toString('utf8'),
          value: message.value,
        }));
        const taken = offer(batch.firstOffset(), batch.lastOffset(), records);
        if (taken === undefined) return;
        const beating = setInterval(
          () => void payload.heartbeat().catch(() => undefined),
          HEARTBEAT_EVERY_MS,
        );
        try {
          await taken;
        } finally {
          clearInterval(beating);
        }
      },
    });
    await running.catch(fail);
    // kafkajs takes seeks only once `run` has created the group membership.
    consumer.seek({ topic, partition, offset: start.toString() });
    for (;;) {
      const offered = queue.shift();
      if (offered !== undefined) {
        yield offered.page;
        offered.taken();
        if (BigInt(offered.page.next) >= to) return;
        continue;
      }
      if (failure !== undefined) throw failure;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(() => {
          failure ??= new StoreUnavailableError(
            'kafka',
            `reading ${topic}/${partition} from ${cursor} to ${to}: no fetch within ${idleTimeoutMs} ms`,
          );
          resolve();
        }, idleTimeoutMs);
      });
      clearTimeout(timer);
    }
  } catch (error) {
    throw translateKafkaError(error);
  } finally {
    // Fetches still held would keep the consumer from stopping.
    for (const release of holding) release();
    await consumer?.disconnect().catch(() => undefined);
    const admin = kafka.admin();
    await admin
      .connect()
      .then(() => admin.deleteGroups([groupId]))
      .catch(() => undefined)
      .finally(() => admin.disconnect().catch(() => undefined));
  }
}

/**
 * Reads stretches of a topic's partitions again, for the wallet's repairs: each read
 * through a throw-away consumer group that nothing remembers, read-committed like the
 * wallet's own consumer, pages taken one at a time.
 */
export const createPartitionReader = ({
  kafka,
  idleTimeoutMs = 30_000,
  groupPrefix = 'spendstream-wallet-repair',
}: PartitionReaderConfig): PartitionReader => ({
  read: (topic, partition, from, to) =>
    readPartition(
      kafka,
      topic,
      partition,
      { from: BigInt(from), to: BigInt(to) },
      { idleTimeoutMs, groupPrefix },
    ),
});
