import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { UsageError } from './command.ts';
import {
  purchasesFromArguments,
  purchasesFromLines,
  readLines,
  type Outgoing,
} from './purchaseInput.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const collect = async <T>(iterable: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
};

const frameOf = (item: Outgoing | undefined) => {
  assert.ok(item !== undefined && 'frame' in item, 'a purchase to send');
  return { id: item.id, sent: JSON.parse(item.frame) as Record<string, unknown> };
};

test('a purchase without an id gets a random UUID, the same in its frame and for retries', () => {
  const [given, assigned, other] = purchasesFromArguments([
    '{"id":"order-1","user_id":"123","amount":49.99}',
    '{"user_id":"7","amount":"0.10","currency":"EUR"}',
    '{"user_id":"7","amount":1}',
  ]).map(frameOf);

  assert.deepEqual(given, {
    id: 'order-1',
    sent: { id: 'order-1', user_id: '123', amount: 49.99 },
  });
  assert.match(assigned?.id ?? '', UUID);
  assert.deepEqual(assigned?.sent, {
    id: assigned?.id,
    user_id: '7',
    amount: '0.10',
    currency: 'EUR',
  });
  assert.notEqual(other?.id, assigned?.id);
});

test('an id that is present, even an invalid one, is sent as given for the ingest to judge', () => {
  const [item] = purchasesFromArguments(['{"id":42,"user_id":"1","amount":1}']).map(frameOf);
  assert.deepEqual(item, { id: undefined, sent: { id: 42, user_id: '1', amount: 1 } });
});

test('an argument that is not a JSON object is a usage error naming it', () => {
  for (const text of ['user_id=123', '[{"user_id":"1","amount":1}]', '"text"', 'null']) {
    assert.throws(
      () => purchasesFromArguments(['{"user_id":"1","amount":1}', text]),
      (error: unknown) =>
        error instanceof UsageError && error.message.startsWith('purchase argument 2 '),
    );
  }
});

test('lines split across chunks, CRLF endings and a last line without newline are read whole', async () => {
  const input = Readable.from([
    '{"user_id":"1",',
    '"amount":1}\r\n\n{"user_id"',
    ':"2","amount":2}',
  ]);
  assert.deepEqual(await collect(readLines(input, 1_048_576)), [
    '{"user_id":"1","amount":1}',
    '',
    '{"user_id":"2","amount":2}',
  ]);
});

test('blank lines are skipped; a line that is not a JSON object is answered with its number', async () => {
  const lines = [
    '{"user_id":"1","amount":1}',
    '',
    '  ',
    '{"user_id":',
    '[1]',
    '{"id":"x","user_id":"2","amount":2}',
  ];
  const items = await collect(purchasesFromLines(Readable.from(lines)));

  assert.equal(items.length, 4);
  assert.deepEqual(frameOf(items[0]).sent, { id: frameOf(items[0]).id, user_id: '1', amount: 1 });
  assert.deepEqual(items[1], {
    reply: { status: 'error', code: 'invalid_json', message: 'line 4 is not valid JSON' },
  });
  assert.deepEqual(items[2], {
    reply: {
      status: 'error',
      code: 'invalid_purchase',
      message: 'line 5 is not a JSON object; each line holds one purchase',
    },
  });
  assert.equal(frameOf(items[3]).id, 'x');
});

test('a line over the limit comes out as its length in bytes, in its place', async () => {
  const huge = 'x'.repeat(40);
  const input = Readable.from([
    '{"user_id":"1","amount":1}\n',
    `{"user_id":"${huge.slice(0, 10)}`,
    huge,
    huge,
    `"}\n{"user_id":"2","amount":2}\n`,
    huge,
    huge,
  ]);
  assert.deepEqual(await collect(readLines(input, 32)), [
    '{"user_id":"1","amount":1}',
    { bytes: 12 + 10 + 80 + 2, limit: 32 },
    '{"user_id":"2","amount":2}',
    { bytes: 80, limit: 32 },
  ]);
});

test('the limit is in UTF-8 bytes, a \\r\\n ending not counted; characters split across chunks are whole', async () => {
  const e = Buffer.from('é'); // 2 bytes
  const sixteen = 'é'.repeat(16); // 32 bytes
  const input = Readable.from([
    Buffer.from(`${sixteen}\r\n${sixteen}é\n`),
    // One 'é' split between two chunks, in a line of exactly the limit.
    Buffer.concat([Buffer.from('é'.repeat(7)), e.subarray(0, 1)]),
    Buffer.concat([e.subarray(1), Buffer.from(`${'é'.repeat(8)}\r`)]),
    Buffer.from('\n'),
    // 33 bytes and a \r: one over, however it ends.
    Buffer.from(`x${sixteen}\r`),
  ]);
  assert.deepEqual(await collect(readLines(input, 32)), [
    sixteen,
    { bytes: 34, limit: 32 },
    sixteen,
    { bytes: 33, limit: 32 },
  ]);
});

test(
  'input without newlines is read in linear time and answered as one line',
  { timeout: 20_000 },
  async () => {
    // 64 MiB in 64 KiB chunks: re-joining the line so far per chunk copies some 32 GiB.
    const chunk = Buffer.alloc(65_536, 'x');
    const chunks = function* () {
      for (let i = 0; i < 1_024; i += 1) yield chunk;
    };
    const started = performance.now();
    const lines = await collect(readLines(Readable.from(chunks()), 1_048_576));
    assert.deepEqual(lines, [{ bytes: 1_024 * 65_536, limit: 1_048_576 }]);
    assert.ok(performance.now() - started < 5_000, `${Math.round(performance.now() - started)} ms`);
  },
);

test('a line over the limit is answered too_large with its number, and not sent', async () => {
  const items = await collect(
    purchasesFromLines(
      Readable.from([
        '{"user_id":"1","amount":1}',
        { bytes: 2_000_000, limit: 1_048_576 },
        '{"user_id":"2","amount":2}',
      ]),
    ),
  );
  assert.equal(items.length, 3);
  assert.deepEqual(items[1], {
    reply: {
      status: 'error',
      code: 'too_large',
      message: 'line 2 is 2000000 bytes, more than the 1048576 a frame may hold; not sent',
    },
  });
  assert.deepEqual(frameOf(items[2]).sent, { id: frameOf(items[2]).id, user_id: '2', amount: 2 });
});
