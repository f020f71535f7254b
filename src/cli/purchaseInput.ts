// What `spendstream send` reads: purchases as JSON objects, from its arguments or as JSON
// lines from a file or stdin. Each gets an id when it has none, so that a resend of it
// (after a lost connection or an `unavailable` reply) is recognised as the same purchase.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { UsageError } from './command.ts';

/** A reply as the ingest sends it, or as the CLI makes one up for a purchase it could not send. */
export type Reply = Record<string, unknown> & { readonly status: string };

/** One purchase to send (its frame and id), or the reply to a line that holds none. */
export type Outgoing =
  { readonly frame: string; readonly id: string | undefined } | { readonly reply: Reply };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The frame for one purchase object: as given, with a random UUID as `id` when it has none. */
const toFrame = (purchase: Record<string, unknown>): Outgoing => {
  if (Object.hasOwn(purchase, 'id')) {
    // An invalid id is sent as it is: the ingest's reply says what is wrong with it.
    return {
      frame: JSON.stringify(purchase),
      id: typeof purchase['id'] === 'string' ? purchase['id'] : undefined,
    };
  }
  const id = randomUUID();
  return { frame: JSON.stringify({ id, ...purchase }), id };
};

/**
 * The purchases given as arguments, one JSON object each. Checked before anything is sent:
 * an argument that is not a JSON object is a mistake in the command line.
 */
export const purchasesFromArguments = (args: readonly string[]): Outgoing[] =>
  args.map((text, index) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (!isObject(value)) {
      throw new UsageError(
        `purchase argument ${index + 1} is not a JSON object: ${text}\n` +
          `write each purchase as one argument, e.g. '{"user_id":"123","amount":49.99}'`,
      );
    }
    return toFrame(value);
  });

/** A line longer than the reader's limit, in place of its text (dropped as it streamed). */
export interface LongLine {
  /** The line's length in bytes, without its line ending. */
  readonly bytes: number;
  /** The most bytes a line may hold. */
  readonly limit: number;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * The lines of `input` (UTF-8, `\n` or `\r\n`), read as they are consumed. A line longer
 * than `maxLineBytes` bytes (a frame the ingest would refuse) comes out as a
 * {@link LongLine}: its bytes are counted and dropped as they arrive, so input without
 * newlines cannot grow the reader's memory. Each byte is looked at once; a line is
 * joined from its pieces once, when it ends.
 */
export async function* readLines(
  input: Readable,
  maxLineBytes: number,
): AsyncGenerator<string | LongLine> {
  // The current line: its pieces while it fits (one byte more, for a \r of a \r\n).
  let pieces: Buffer[] = [];
  let bytes = 0;
  let kept = true;
  let endsWithCr = false;
  const add = (piece: Buffer) => {
    if (piece.length === 0) return;
    bytes += piece.length;
    endsWithCr = piece[piece.length - 1] === CR;
    if (!kept) return;
    if (bytes > maxLineBytes + 1) {
      kept = false;
      pieces = [];
    } else {
      pieces.push(piece);
    }
  };
  const line = (): string | LongLine => {
    const length = endsWithCr ? bytes - 1 : bytes;
    const result =
      length > maxLineBytes
        ? { bytes: length, limit: maxLineBytes }
        : (pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, bytes)).toString(
            'utf8',
            0,
            length,
          );
    pieces = [];
    bytes = 0;
    kept = true;
    endsWithCr = false;
    return result;
  };
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    // \n never occurs inside a multi-byte UTF-8 sequence: bytes split where characters do.
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (let end = data.indexOf(NEWLINE); end !== -1; end = data.indexOf(NEWLINE, start)) {
      add(data.subarray(start, end));
      start = end + 1;
      yield line();
    }
    add(data.subarray(start));
  }
  if (bytes > 0) yield line();
}

/**
 * The purchases of a JSON-lines stream, one object per line; blank lines are skipped. A
 * line that is not a JSON object, or a {@link LongLine}, is not sent: it is answered in
 * its place, with the code the ingest would use (`invalid_json`, `invalid_purchase`,
 * `too_large`) and its line number, and the lines after it are still sent.
 */
export async function* purchasesFromLines(
  lines: AsyncIterable<string | LongLine>,
): AsyncGenerator<Outgoing> {
  let number = 0;
  for await (const line of lines) {
    number += 1;
    if (typeof line !== 'string') {
      yield {
        reply: {
          status: 'error',
          code: 'too_large',
          message: `line ${number} is ${line.bytes} bytes, more than the ${line.limit} a frame may hold; not sent`,
        },
      };
      continue;
    }
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      yield {
        reply: {
          status: 'error',
          code: 'invalid_json',
          message: `line ${number} is not valid JSON`,
        },
      };
      continue;
    }
    yield isObject(value)
      ? toFrame(value)
      : {
          reply: {
            status: 'error',
            code: 'invalid_purchase',
            message: `line ${number} is not a JSON object; each line holds one purchase`,
          },
        };
  }
}
