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

/** Stands for a line longer than the reader's limit: skipped as it streams, never held. */
export const LINE_TOO_LONG = Symbol('line too long');

/** Characters a line may hold by default: the ingest's default frame limit (1 MiB). */
export const DEFAULT_MAX_LINE_LENGTH = 1_048_576;

const withoutCr = (line: string) => (line.endsWith('\r') ? line.slice(0, -1) : line);

/**
 * The lines of `input` (UTF-8, `\n` or `\r\n`), read as they are consumed. A line longer
 * than `maxLineLength` characters (a frame the ingest would refuse anyway) comes out as
 * {@link LINE_TOO_LONG}, and its text is dropped as it arrives, so input without newlines
 * cannot grow the reader's memory.
 */
export async function* readLines(
  input: Readable,
  maxLineLength = DEFAULT_MAX_LINE_LENGTH,
): AsyncGenerator<string | typeof LINE_TOO_LONG> {
  input.setEncoding('utf8');
  // The start of the current line, in the pieces it arrived in (no quadratic re-joining).
  let pieces: string[] = [];
  let length = 0;
  let tooLong = false;
  for await (const chunk of input as AsyncIterable<string>) {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, end);
      start = end + 1;
      if (tooLong || length + piece.length > maxLineLength) yield LINE_TOO_LONG;
      else yield withoutCr(pieces.length === 0 ? piece : pieces.join('') + piece);
      pieces = [];
      length = 0;
      tooLong = false;
    }
    const tail = chunk.slice(start);
    if (tooLong || tail === '') continue;
    if (length + tail.length > maxLineLength) {
      tooLong = true;
      pieces = [];
      length = 0;
    } else {
      pieces.push(tail);
      length += tail.length;
    }
  }
  if (tooLong) yield LINE_TOO_LONG;
  else if (length > 0) yield withoutCr(pieces.join(''));
}

/**
 * The purchases of a JSON-lines stream, one object per line; blank lines are skipped. A
 * line that is not a JSON object is not sent: it is answered in its place, with the code
 * the ingest would use (`invalid_json`, `invalid_purchase`, `too_large`) and its line number, and the
 * lines after it are still sent.
 */
export async function* purchasesFromLines(
  lines: AsyncIterable<string | typeof LINE_TOO_LONG>,
): AsyncGenerator<Outgoing> {
  let number = 0;
  for await (const line of lines) {
    number += 1;
    if (line === LINE_TOO_LONG) {
      yield {
        reply: {
          status: 'error',
          code: 'too_large',
          message: `line ${number} is longer than a frame may be; not sent`,
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
