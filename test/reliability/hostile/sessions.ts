// What the fuzzing test sends, as plain data (printed in a counterexample) and rendered
// to the text or bytes that go on the wire. Ids that should be fresh get a per-run prefix
// when rendered, so runs (and shrinking) do not collide.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { amountVerdicts } from './oracle.ts';

/** A JSON value as raw text, and the cents it means when built as a valid amount. */
export interface Token {
  readonly raw: string;
  readonly cents?: number;
}
/** An id made fresh per run: `<run prefix><suffix>`, padded to `pad` characters if set. */
export interface FreshId {
  readonly suffix: string;
  readonly pad?: number;
}
/** One key of a generated object and its value. */
export interface Entry {
  readonly key: string;
  readonly value: Token | FreshId;
}
/** One element of a frame: an object built key by key, or raw text. */
export type ElementSpec =
  | { readonly kind: 'object'; readonly entries: readonly Entry[]; readonly space: string }
  | { readonly kind: 'raw'; readonly text: string };

/** One frame a session sends, before it is rendered to text or bytes. */
export type FrameSpec =
  | { readonly kind: 'purchase'; readonly element: ElementSpec }
  | { readonly kind: 'array'; readonly elements: readonly ElementSpec[] }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'deep'; readonly shape: DeepShape; readonly depth: number }
  | { readonly kind: 'padded'; readonly missing: number; readonly element: ElementSpec }
  | { readonly kind: 'binary'; readonly bytes: Uint8Array };

/** A last frame that must close the connection. */
export type Terminal =
  | { readonly kind: 'oversize-text'; readonly over: number }
  | { readonly kind: 'oversize-binary'; readonly over: number }
  | {
      readonly kind: 'invalid-utf8';
      readonly before: string;
      readonly bad: readonly number[];
      readonly after: string;
    };

/** What one client connection sends: frames, then maybe a terminal frame. */
export interface Session {
  readonly frames: readonly FrameSpec[];
  readonly terminal: Terminal | null;
}

/** Nesting shapes of deep frames, and how many bytes each level takes. */
export const DEEP_SHAPES = {
  'open-arrays': { perLevel: 1 },
  'balanced-arrays': { perLevel: 2 },
  'open-objects': { perLevel: 5 },
  'balanced-objects': { perLevel: 6 },
  'deep-unknown-field': { perLevel: 2 },
} as const;
/** A name of {@link DEEP_SHAPES}. */
export type DeepShape = keyof typeof DEEP_SHAPES;

/** JSON text of a value. */
export const json = (value: unknown): string => JSON.stringify(value);

/** INGEST_MAX_FRAME_BYTES of the fuzzed service. */
export const MAX_FRAME_BYTES = 262_144;
/** INGEST_MAX_ARRAY_LENGTH of the fuzzed service. */
export const MAX_ARRAY_LENGTH = 50;

function renderValue(value: Token | FreshId, prefix: string): string {
  if ('raw' in value) return value.raw;
  const id = `${prefix}${value.suffix}`;
  return json(value.pad === undefined ? id : id.padEnd(value.pad, 'p'));
}

/** The JSON text of an element, fresh ids prefixed with `prefix`. */
export function renderElement(element: ElementSpec, prefix: string): string {
  if (element.kind === 'raw') return element.text;
  const s = element.space;
  const fields = element.entries.map(
    (entry) => `${s}${json(entry.key)}${s}:${s}${renderValue(entry.value, prefix)}`,
  );
  return `{${fields.join(',')}${s}}`;
}

/** The text of a (non-binary) frame, fresh ids prefixed with `prefix`. */
export function renderFrame(frame: FrameSpec, prefix: string): string {
  switch (frame.kind) {
    case 'purchase':
      return renderElement(frame.element, prefix);
    case 'array':
      return `[${frame.elements.map((element) => renderElement(element, prefix)).join(',')}]`;
    case 'text':
      return frame.text;
    case 'padded': {
      const text = renderElement(frame.element, prefix);
      return (
        text + ' '.repeat(Math.max(0, MAX_FRAME_BYTES - frame.missing - Buffer.byteLength(text)))
      );
    }
    case 'deep':
      return renderDeep(frame.shape, frame.depth);
    case 'binary':
      throw new Error('binary frames are not text');
  }
}

function renderDeep(shape: DeepShape, d: number): string {
  switch (shape) {
    case 'open-arrays':
      return '['.repeat(d);
    case 'balanced-arrays':
      return '['.repeat(d) + ']'.repeat(d);
    case 'open-objects':
      return '{"a":'.repeat(d);
    case 'balanced-objects':
      return `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`;
    case 'deep-unknown-field':
      return `{"user_id":"deep","amount":1,"x":${'['.repeat(d)}${']'.repeat(d)}}`;
  }
}

/**
 * Where the generator built an amount as valid cents, the oracle must read it as exactly
 * those cents: the check that what is expected of the server is what the generator meant.
 */
export const checkIntent = (frame: FrameSpec): void => {
  const elements =
    frame.kind === 'array'
      ? frame.elements
      : frame.kind === 'purchase' || frame.kind === 'padded'
        ? [frame.element]
        : [];
  for (const element of elements) {
    if (element.kind !== 'object') continue;
    const amount = element.entries.findLast((entry) => entry.key === 'amount')?.value;
    if (amount === undefined || !('raw' in amount) || amount.cents === undefined) continue;
    assert.deepEqual(amountVerdicts(JSON.parse(amount.raw)), [amount.cents], amount.raw);
  }
};

/** The bytes of a terminal frame, whether it is binary, and the close code it must get. */
export const renderTerminal = (
  terminal: Terminal,
): { bytes: Buffer; binary: boolean; code: number } => {
  switch (terminal.kind) {
    case 'oversize-text': {
      const text = '{"user_id":"big","amount":1}';
      const size = MAX_FRAME_BYTES + terminal.over;
      return {
        bytes: Buffer.from(text + ' '.repeat(size - text.length)),
        binary: false,
        code: 1009,
      };
    }
    case 'oversize-binary':
      return { bytes: Buffer.alloc(MAX_FRAME_BYTES + terminal.over, 7), binary: true, code: 1009 };
    case 'invalid-utf8': {
      const bytes = Buffer.concat([
        Buffer.from(`{"user_id":"${terminal.before}`),
        Buffer.from(terminal.bad),
        Buffer.from(`${terminal.after}","amount":1}`),
      ]);
      assert.ok(!isUtf8(bytes), 'the generator built invalid UTF-8');
      return { bytes, binary: false, code: 1007 };
    }
  }
};
