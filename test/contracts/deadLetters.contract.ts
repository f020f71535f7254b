// The DeadLetterPublisher contract: what every implementation of the port keeps, the
// published fake and the Kafka adapter alike. Each runner calls it once per implementation.
import assert from 'node:assert/strict';
import type { DeadLetterPublisher } from '../../src/core/ports.ts';
import type { PoisonRecord } from '../../src/core/records.ts';
import { contractSuite } from './contractSuite.ts';

/** One implementation under test, with an empty dead-letter log when opened. */
export interface DeadLetterPublisherUnderTest {
  readonly deadLetters: DeadLetterPublisher;
  /** Every record the dead-letter log now holds, with its origin and reason. */
  readonly readBack: () => Promise<readonly PoisonRecord[]>;
  readonly close: () => Promise<void>;
}

const poison = (
  partition: number,
  offset: string,
  key: string | null,
  value: Buffer | null,
  reason: string,
  topic = 'user_purchase',
): PoisonRecord => ({ topic, partition, record: { offset, key, value }, reason });

/** By origin: the port promises no order between records of different keys. */
const byOrigin = (records: readonly PoisonRecord[]): PoisonRecord[] =>
  [...records].sort(
    (a, b) =>
      a.topic.localeCompare(b.topic) ||
      a.partition - b.partition ||
      Number(BigInt(a.record.offset) - BigInt(b.record.offset)),
  );

/**
 * Registers the DeadLetterPublisher contract's tests, each on a fresh implementation from
 * `open`.
 */
export const deadLetterPublisherContract = (
  name: string,
  open: () => Promise<DeadLetterPublisherUnderTest>,
): void => {
  contractSuite(`DeadLetterPublisher contract: ${name}`, open, (test) => {
    test('each record is kept with its origin, key, value and reason, byte for byte', async ({
      deadLetters,
      readBack,
    }) => {
      const records = [
        poison(0, '7', '123', Buffer.from('not json'), 'invalid_purchase: not JSON'),
        // Not UTF-8 at all: an operator must see the bytes that came, not a decoding of them.
        poison(2, '9007199254740991', null, Buffer.from([0xff, 0xfe, 0x00, 0x80]), 'not JSON'),
        poison(
          1,
          '0',
          'ユーザー',
          Buffer.from('{"user_id":"ユーザー","amount":0}'),
          'amount ≤ 0 — refusé',
        ),
        poison(0, '3', 'other', Buffer.from('[]'), 'not a JSON object', 'legacy_purchases'),
      ];
      await deadLetters.publish(records);
      assert.deepEqual(byOrigin(await readBack()), byOrigin(records));
    });

    test('a record without a value (a tombstone) is kept without a value', async ({
      deadLetters,
      readBack,
    }) => {
      const tombstone = poison(1, '42', '123', null, 'no value');
      await deadLetters.publish([tombstone]);
      assert.deepEqual(await readBack(), [tombstone]);
    });

    test('a record dead-lettered again is kept again', async ({ deadLetters, readBack }) => {
      const record = poison(0, '5', 'again', Buffer.from('x'), 'not JSON');
      // A wallet that stops before committing its offset meets the record again.
      await deadLetters.publish([record]);
      await deadLetters.publish([record]);
      assert.deepEqual(await readBack(), [record, record]);
    });

    test('an empty batch resolves and keeps nothing', async ({ deadLetters, readBack }) => {
      await deadLetters.publish([]);
      const record = poison(0, '1', 'after', Buffer.from('x'), 'not JSON');
      await deadLetters.publish([record]);
      assert.deepEqual(await readBack(), [record]);
    });

    test('publish takes the records as they were when it was called', async ({
      deadLetters,
      readBack,
    }) => {
      const batch = [poison(0, '1', 'reuse', Buffer.from('a'), 'not JSON')];
      const publishing = deadLetters.publish(batch);
      // A caller reusing its buffer for the next batch must not change this one.
      batch.length = 0;
      batch.push(poison(0, '2', 'reuse', Buffer.from('b'), 'not JSON'));
      await publishing;
      assert.deepEqual(await readBack(), [poison(0, '1', 'reuse', Buffer.from('a'), 'not JSON')]);
    });
  });
};
