// decodeFrame is a synchronous map with no time in it: most cases call decodeFrameText
// directly, and one marble test checks that the operator decodes each frame in order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMarbleScheduler } from '../../testing/index.ts';
import { decodeFrame, decodeFrameText, type DecodeFrameConfig } from './decodeFrame.ts';

const counter = (): DecodeFrameConfig['newId'] => {
  let next = 0;
  return () => {
    next += 1;
    return `gen-${next}`;
  };
};

const config = (): DecodeFrameConfig => ({ maxArrayLength: 3, newId: counter() });

/** The one item of a single-purchase frame. */
const single = (text: string) => {
  const frame = decodeFrameText(text, config());
  assert.equal(frame.frameError, undefined);
  assert.equal(frame.array, false);
  assert.equal(frame.items.length, 1);
  return frame.items[0];
};

/** Asserts that `purchase` is refused as invalid_purchase on `field`. */
const refused = (purchase: unknown, field: string | undefined, message: RegExp) => {
  const item = single(JSON.stringify(purchase));
  assert.ok(item !== undefined && !item.ok, `${JSON.stringify(purchase)} was accepted`);
  assert.equal(item.error.status, 'error');
  if (item.error.status !== 'error') return;
  assert.equal(item.error.code, 'invalid_purchase');
  assert.equal(item.error.field, field);
  assert.match(item.error.message, message);
};

test('the proof-of-concept shape decodes to exact cents and a server-assigned id', () => {
  assert.deepEqual(single('{"user_id":"123","amount":49.99}'), {
    ok: true,
    purchase: { id: 'gen-1', userId: '123', amountCents: 4999 },
  });
});

test('without newId, a purchase gets a UUIDv7', () => {
  const frame = decodeFrameText('{"user_id":"u","amount":1}', { maxArrayLength: 1 });
  const item = frame.items[0];
  assert.ok(item?.ok);
  assert.match(
    item.purchase.id,
    /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
});

test('a decimal string amount and a client id are taken as they are', () => {
  assert.deepEqual(single('{"id":"order-7.A:b_c","user_id":"u1","amount":"49.99"}'), {
    ok: true,
    purchase: { id: 'order-7.A:b_c', userId: 'u1', amountCents: 4999 },
  });
  assert.deepEqual(single('{"user_id":"u1","amount":"7"}'), {
    ok: true,
    purchase: { id: 'gen-1', userId: 'u1', amountCents: 700 },
  });
});

test('the largest amount, 1000000.00, is accepted', () => {
  assert.deepEqual(single('{"user_id":"u","amount":1000000}'), {
    ok: true,
    purchase: { id: 'gen-1', userId: 'u', amountCents: 100_000_000 },
  });
});

test('unknown fields are ignored', () => {
  assert.deepEqual(single('{"user_id":"u","amount":0.1,"currency":"EUR","note":{"a":1}}'), {
    ok: true,
    purchase: { id: 'gen-1', userId: 'u', amountCents: 10 },
  });
});

test('an array frame decodes each element on its own, in order', () => {
  const frame = decodeFrameText(
    '[{"user_id":"a","amount":1},{"user_id":"b","amount":0},7,{"user_id":"c","amount":"2.50"}]',
    { maxArrayLength: 4, newId: counter() },
  );
  assert.equal(frame.array, true);
  assert.equal(frame.frameError, undefined);
  assert.deepEqual(
    frame.items.map((item) => (item.ok ? item.purchase : item.error)),
    [
      { id: 'gen-1', userId: 'a', amountCents: 100 },
      {
        status: 'error',
        code: 'invalid_purchase',
        field: 'amount',
        message: 'amount must be greater than 0',
      },
      { status: 'error', code: 'invalid_purchase', message: 'a purchase must be a JSON object' },
      { id: 'gen-2', userId: 'c', amountCents: 250 },
    ],
  );
});

test('an array frame of exactly maxArrayLength purchases is accepted', () => {
  const frame = decodeFrameText(
    JSON.stringify([1, 2, 3].map(() => ({ user_id: 'u', amount: 1 }))),
    config(),
  );
  assert.equal(frame.frameError, undefined);
  assert.equal(frame.items.length, 3);
  assert.ok(frame.items.every((item) => item.ok));
});

test('an array frame longer than maxArrayLength is refused whole as too_large', () => {
  const frame = decodeFrameText(
    JSON.stringify([1, 2, 3, 4].map(() => ({ user_id: 'u', amount: 1 }))),
    config(),
  );
  assert.equal(frame.frameError?.status, 'error');
  assert.equal(frame.frameError.status === 'error' && frame.frameError.code, 'too_large');
  assert.match(frame.frameError.message, /at most 3 purchases, not 4/);
  assert.deepEqual(frame.items, []);
});

test('a frame that is not JSON is refused whole as invalid_json', () => {
  for (const text of ['nope', '{"user_id":"u",', '', "{'user_id':'u'}"]) {
    const frame = decodeFrameText(text, config());
    assert.equal(
      frame.frameError?.status === 'error' && frame.frameError.code,
      'invalid_json',
      text,
    );
    assert.deepEqual(frame.items, [], text);
  }
});

test('a JSON value that is not an object is an invalid purchase with no field', () => {
  for (const value of [42, 'text', null, true]) {
    refused(value, undefined, /^a purchase must be a JSON object$/);
  }
  const frame = decodeFrameText('[[{"user_id":"u","amount":1}]]', config());
  const item = frame.items[0];
  assert.ok(item !== undefined && !item.ok);
  assert.equal(item.error.status === 'error' && item.error.field, undefined);
});

test('user_id: missing, not a string, empty, too long or with control characters', () => {
  refused({ amount: 1 }, 'user_id', /^user_id must be a string$/);
  refused({ user_id: 123, amount: 1 }, 'user_id', /^user_id must be a string$/);
  refused({ user_id: '', amount: 1 }, 'user_id', /^user_id must not be empty$/);
  refused({ user_id: 'x'.repeat(129), amount: 1 }, 'user_id', /^user_id must be at most 128/);
  for (const control of ['\u0000', '\n', '\u001f', '\u007f', '\u0085', '\u009f']) {
    refused({ user_id: `a${control}b`, amount: 1 }, 'user_id', /control characters/);
  }
  assert.ok(single(JSON.stringify({ user_id: 'x'.repeat(128), amount: 1 }))?.ok);
  assert.ok(single(JSON.stringify({ user_id: 'Zoë 北京', amount: 1 }))?.ok);
});

test('amount: zero or negative', () => {
  for (const amount of [0, -0, -1, -49.99, '0', '0.00', '-1', ' -1']) {
    refused({ user_id: 'u', amount }, 'amount', /^amount must be greater than 0$/);
  }
});

test('amount: more than two decimal places', () => {
  for (const amount of [49.999, 0.001, '49.999', '0.001']) {
    refused(
      { user_id: 'u', amount },
      'amount',
      /^amount must be a decimal with at most 2 decimal places$/,
    );
  }
});

test('amount: above 1000000.00', () => {
  for (const amount of [1000000.01, 2e6, '1000000.01', '99999999999']) {
    refused({ user_id: 'u', amount }, 'amount', /^amount must be at most 1000000.00$/);
  }
});

test('amount: strings that are not plain decimals', () => {
  for (const amount of ['NaN', 'Infinity', '1e2', '0x10', '.5', '5.', ' 5', '1,5', '']) {
    refused(
      { user_id: 'u', amount },
      'amount',
      /^amount must be a decimal with at most 2 decimal places$/,
    );
  }
});

test('amount: missing or of another JSON type', () => {
  for (const purchase of [
    { user_id: 'u' },
    { user_id: 'u', amount: null },
    { user_id: 'u', amount: true },
    { user_id: 'u', amount: [1] },
  ]) {
    refused(purchase, 'amount', /^amount must be a JSON number or a decimal string$/);
  }
});

test('id: bad characters, empty, too long, or not a string', () => {
  refused({ user_id: 'u', amount: 1, id: 'a b' }, 'id', /^id may hold only/);
  refused({ user_id: 'u', amount: 1, id: 'a/b' }, 'id', /^id may hold only/);
  refused({ user_id: 'u', amount: 1, id: 'é' }, 'id', /^id may hold only/);
  refused({ user_id: 'u', amount: 1, id: '' }, 'id', /^id must not be empty$/);
  refused({ user_id: 'u', amount: 1, id: 'x'.repeat(65) }, 'id', /^id must be at most 64/);
  refused({ user_id: 'u', amount: 1, id: 5 }, 'id', /^id must be a string$/);
  assert.ok(single(JSON.stringify({ user_id: 'u', amount: 1, id: 'x'.repeat(64) }))?.ok);
});

test("a refused purchase's reply carries the client's id, so the client can match it", () => {
  const item = single('{"id":"order-9","user_id":"u","amount":0}');
  assert.ok(item !== undefined && !item.ok);
  assert.equal(item.error.id, 'order-9');
});

test('newId is used only for valid purchases that came without an id', () => {
  let calls = 0;
  const newId = () => {
    calls += 1;
    return 'gen';
  };
  decodeFrameText('[{"user_id":"u","amount":0},{"id":"mine","user_id":"u","amount":1}]', {
    maxArrayLength: 2,
    newId,
  });
  assert.equal(calls, 0);
});

test('the operator decodes each frame as it arrives', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const frames = cold('-a-b|', { a: '{"user_id":"u","amount":1}', b: 'nope' });
    expectObservable(frames.pipe(decodeFrame(config()))).toBe('-x-y|', {
      x: {
        array: false,
        items: [{ ok: true, purchase: { id: 'gen-1', userId: 'u', amountCents: 100 } }],
      },
      y: {
        array: false,
        items: [],
        frameError: {
          status: 'error',
          code: 'invalid_json',
          message: 'the frame is not valid JSON',
        },
      },
    });
  });
});
