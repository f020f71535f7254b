// fast-check generators of fuzzing sessions: frames valid, invalid and hostile, weighted
// towards the edges of the documented rules.
import fc from 'fast-check';
import { centsToDecimal } from '../../../src/core/purchase.ts';
import { AMOUNT_EDGES, USER_ID_EDGES } from './edges.ts';
import {
  DEEP_SHAPES,
  json,
  MAX_ARRAY_LENGTH,
  MAX_FRAME_BYTES,
  renderElement,
  type DeepShape,
  type ElementSpec,
  type Entry,
  type FrameSpec,
  type FreshId,
  type Session,
  type Terminal,
  type Token,
} from './sessions.ts';

// Raw JSON text of user_id values, including escapes a serialiser would not write.
const userIdToken: fc.Arbitrary<Token> = fc
  .oneof(
    { weight: 4, arbitrary: fc.constantFrom(...USER_ID_EDGES).map(json) },
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 140 }).map(json) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }).map(json) },
    {
      weight: 2,
      arbitrary: fc
        .string({
          unit: fc.constantFrom('a', '😀', '\u0085', '\u0000', 'é', '\u2028', '\ufffd'),
          minLength: 50,
          maxLength: 140,
        })
        .map(json),
    },
    { weight: 1, arbitrary: fc.integer({ min: 120, max: 4_000 }).map((n) => json('u'.repeat(n))) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map(json) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '"\\u0000"',
        '"\\ud83d\\ude00"',
        '"\\u001F"',
        '"\\u007f"',
        '"\\u0085"',
        '"\\u00A0"',
        '"\\/slash"',
        '"\\"quoted\\""',
        '"tab\\there"',
      ),
    },
  )
  .map((raw) => ({ raw }));

const amountToken: fc.Arbitrary<Token> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(...AMOUNT_EDGES)
      .map(([raw, cents]) => (cents === undefined ? { raw } : { raw, cents })),
  },
  {
    // Valid by construction: integer cents written the ways a client may write them.
    weight: 6,
    arbitrary: fc
      .oneof(
        fc.integer({ min: 1, max: 100_000_000 }),
        fc.constantFrom(1, 99, 100, 101, 99_999_999, 100_000_000),
      )
      .chain((cents) =>
        fc.constantFrom(
          { raw: json(cents / 100), cents },
          { raw: json(centsToDecimal(cents)), cents },
          { raw: json(String(cents / 100)), cents },
          { raw: `${cents}e-2`, cents },
          { raw: `${centsToDecimal(cents)}0`, cents },
        ),
      ),
  },
  {
    // Invalid by construction: too large, negative, three places.
    weight: 3,
    arbitrary: fc.oneof(
      fc.integer({ min: 100_000_001, max: 1e15 }).map((c) => ({ raw: json(c / 100) })),
      fc.integer({ min: -1e9, max: 0 }).map((c) => ({ raw: json(c / 100) })),
      fc
        .integer({ min: 1, max: 1e9 })
        .filter((n) => n % 10 !== 0)
        .map((n) => ({ raw: json(n / 1000) })),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.double().map(json),
        fc.string({ maxLength: 12 }).map(json),
        fc.jsonValue().map(json),
      )
      .map((raw) => ({ raw })),
  },
);

const idValue: fc.Arbitrary<Token | FreshId> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.stringMatching(/^[A-Za-z0-9._:-]{1,20}$/).map((suffix) => ({ suffix })),
  },
  { weight: 2, arbitrary: fc.constantFrom('dup-a', 'dup-b').map((suffix) => ({ suffix })) },
  { weight: 1, arbitrary: fc.constantFrom(64, 65).map((pad) => ({ suffix: '', pad })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        '""',
        'null',
        '1',
        'true',
        '[]',
        '{}',
        '"has space"',
        '"ünï"',
        '"a/b"',
        '"a\\u0000"',
        '"😀"',
        '"a,b"',
        json('i'.repeat(64)),
        json('i'.repeat(65)),
        '"shared-across-runs"',
      )
      .map((raw) => ({ raw })),
  },
  {
    weight: 1,
    arbitrary: fc.string({ unit: 'binary', maxLength: 70 }).map((s) => ({ raw: json(s) })),
  },
);

const unknownEntry: fc.Arbitrary<Entry> = fc.record({
  key: fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        'currency',
        '__proto__',
        'constructor',
        'toString',
        'USER_ID',
        'Amount',
        'user_id ',
        ' amount',
        'ID',
        'amount\u0000',
      ),
    },
    // The same key twice: JSON.parse keeps the last.
    { weight: 1, arbitrary: fc.constantFrom('user_id', 'amount', 'id') },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
  ),
  value: fc.jsonValue({ maxDepth: 3 }).map((value) => ({ raw: json(value) })),
});

const seededShuffle = <T>(items: readonly T[], seed: number): T[] => {
  const out = [...items];
  let state = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i -= 1) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
};

const elementSpec: fc.Arbitrary<ElementSpec> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .record({
        userId: fc.option(userIdToken, { freq: 12 }),
        amount: fc.option(amountToken, { freq: 12 }),
        id: fc.option(idValue, { freq: 2 }),
        extra: fc.array(unknownEntry, { maxLength: 3 }),
        seed: fc.nat(),
        space: fc.constantFrom('', '', '', ' ', '\n\t', '\r\n  '),
      })
      .map(({ userId, amount, id, extra, seed, space }) => {
        const entries: Entry[] = [...extra];
        if (userId !== null) entries.push({ key: 'user_id', value: userId });
        if (amount !== null) entries.push({ key: 'amount', value: amount });
        if (id !== null) entries.push({ key: 'id', value: id });
        return { kind: 'object' as const, entries: seededShuffle(entries, seed), space };
      }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'null',
        '1',
        '"text"',
        '[]',
        '{}',
        'true',
        '-0',
        '1e400',
        '[{"user_id":"1","amount":1}]',
      )
      .map((text) => ({ kind: 'raw' as const, text })),
  },
);

const deepFrame: fc.Arbitrary<FrameSpec> = fc
  .record({
    shape: fc.constantFrom(...(Object.keys(DEEP_SHAPES) as DeepShape[])),
    depth: fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.constantFrom(100_000, 1_000_000)),
  })
  .map(({ shape, depth }) => ({
    kind: 'deep' as const,
    shape,
    // As deep as fits in a frame: 100,000 levels of `[`, ~43,000 of `{"a":`.
    depth: Math.min(depth, Math.floor((MAX_FRAME_BYTES - 100) / DEEP_SHAPES[shape].perLevel)),
  }));

const frameSpec: fc.Arbitrary<FrameSpec> = fc.oneof(
  { weight: 8, arbitrary: elementSpec.map((element) => ({ kind: 'purchase' as const, element })) },
  {
    weight: 5,
    arbitrary: fc
      .array(elementSpec, { maxLength: 8 })
      .map((elements) => ({ kind: 'array' as const, elements })),
  },
  {
    // Arrays at and over INGEST_MAX_ARRAY_LENGTH.
    weight: 1,
    arbitrary: fc
      .array(elementSpec, { minLength: MAX_ARRAY_LENGTH - 1, maxLength: MAX_ARRAY_LENGTH + 2 })
      .map((elements) => ({ kind: 'array' as const, elements })),
  },
  {
    weight: 4,
    arbitrary: fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.string({ maxLength: 200 }),
        fc.json(),
        fc.jsonValue().map(json),
        // A valid frame cut short.
        fc
          .tuple(elementSpec, fc.nat())
          .map(([element, cut]) => renderElement(element, 'cut.').slice(0, cut % 60)),
      )
      .map((text) => ({ kind: 'text' as const, text })),
  },
  { weight: 1, arbitrary: deepFrame },
  {
    // Frames of exactly the limit, or a few bytes under it.
    weight: 1,
    arbitrary: fc
      .record({ missing: fc.oneof(fc.constant(0), fc.nat(64)), element: elementSpec })
      .map(({ missing, element }) => ({ kind: 'padded' as const, missing, element })),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 256 })
      .map((bytes) => ({ kind: 'binary' as const, bytes })),
  },
);

const terminalSpec: fc.Arbitrary<Terminal> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 3 * MAX_FRAME_BYTES }))
      .map((over) => ({ kind: 'oversize-text' as const, over })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: MAX_FRAME_BYTES })
      .map((over) => ({ kind: 'oversize-binary' as const, over })),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('invalid-utf8' as const),
      before: fc.string({ maxLength: 30 }),
      bad: fc.constantFrom(
        [0xff],
        [0xc0, 0x80],
        [0x80],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0xe2, 0x82],
        [0xf8, 0x88, 0x80, 0x80, 0x80],
      ),
      after: fc.string({ maxLength: 30 }),
    }),
  },
);

/** Sessions of one to six frames, a quarter of them ending in a terminal frame. */
export const sessionSpec: fc.Arbitrary<Session> = fc.record({
  frames: fc.array(frameSpec, { minLength: 1, maxLength: 6 }),
  terminal: fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: terminalSpec },
  ),
});
