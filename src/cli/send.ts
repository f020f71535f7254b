// `spendstream send`: purchases from the arguments, a file or stdin to the ingest.
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import type { Config } from '../config.ts';
import { integerOption, parseCommandArgs, UsageError, type Command } from './command.ts';
import {
  purchasesFromArguments,
  purchasesFromLines,
  readLines,
  type Outgoing,
  type Reply,
} from './purchaseInput.ts';
import { sendPurchases } from './purchaseSender.ts';

const WINDOW = 500;
const RETRIES = 5;
const RETRY_DELAY_MS = 100;
const REPLY_TIMEOUT_MS = 30_000;

const help = `Usage: spendstream send [options] [purchase…]

Sends purchases to the ingest over one WebSocket and prints each reply as one JSON
line on stdout, in input order; a summary goes to stderr.

A purchase is a JSON object, as in docs/protocol.md: {"user_id":"123","amount":49.99}
with an optional "id". Give them as arguments (one JSON object each), with --file
(JSON lines: one purchase per line, blank lines skipped), or on stdin as JSON lines
when no purchase argument is given, or the argument is -.

  spendstream send '{"user_id":"123","amount":49.99}' '{"user_id":"7","amount":"0.10"}'
  spendstream send --file purchases.jsonl
  generate-purchases | spendstream send

A purchase without an "id" gets a random UUID, so that it can be resent safely: one
answered "unavailable" or "overloaded", or unanswered when the connection drops, is
resent with the same id (stored once, acked as a duplicate). A line that is not a JSON
object is answered in its place (invalid_json, invalid_purchase) and not sent, as is a
line or frame longer than --max-line-bytes (too_large). A frame the ingest closes the
connection on as too large (code 1009) is answered too_large; the rest go on.

Options:
  --url <ws-url>          the ingest (default ws://WS_HOST:WS_PORT/WS_PATH from the
                          settings)
  --file <path>           read purchases from this JSON-lines file
  --window <n>            most purchases read ahead and not yet answered (default ${WINDOW})
  --retries <n>           resends of one purchase, and reconnections in a row
                          (default ${RETRIES})
  --timeout <ms>          redial a connection silent this long with purchases in flight
                          (default ${REPLY_TIMEOUT_MS})
  --max-line-bytes <n>    the longest line, and frame, sent; longer ones are answered
                          too_large (default INGEST_MAX_FRAME_BYTES, the ingest's limit)
  -h, --help              show this help

Exit status: 0 when every purchase was acked (duplicates included), 1 when any was
refused or left unanswered or the reader of stdout went away before the end, 2 for a
mistake in the command line or an invalid setting.
`;

/** The default URL: the ingest as the settings place it; a wildcard listen address means this host. */
const defaultUrl = ({ ws }: Config): string => {
  const host = ws.host === '0.0.0.0' || ws.host === '::' ? '127.0.0.1' : ws.host;
  return `ws://${host.includes(':') ? `[${host}]` : host}:${ws.port}${ws.path}`;
};

const checkedUrl = (text: string): string => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url is not a URL: ${text}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new UsageError(`--url must be a ws:// or wss:// URL, not ${text}`);
  }
  return text;
};

/** Counts replies for the summary. */
const tally = () => {
  let acked = 0;
  let duplicates = 0;
  const failed = new Map<string, number>();
  return {
    add: (reply: Reply) => {
      if (reply.status === 'ack') {
        acked += 1;
        if (reply['duplicate'] === true) duplicates += 1;
        return;
      }
      const code = typeof reply['code'] === 'string' ? reply['code'] : reply.status;
      failed.set(code, (failed.get(code) ?? 0) + 1);
    },
    get failed() {
      return [...failed.values()].reduce((sum, n) => sum + n, 0);
    },
    summary: () => {
      const refused = [...failed.values()].reduce((sum, n) => sum + n, 0);
      const total = acked + refused;
      const parts = [`${acked} acked${duplicates > 0 ? ` (${duplicates} duplicate)` : ''}`];
      if (refused > 0) {
        const codes = [...failed].map(([code, n]) => `${code} ${n}`).join(', ');
        parts.push(`${refused} failed (${codes})`);
      }
      return `${total} ${total === 1 ? 'purchase' : 'purchases'}: ${parts.join(', ')}`;
    },
  };
};

/** `spendstream send`. */
export const send: Command = {
  help,
  run: async (args, io) => {
    const { values, positionals } = parseCommandArgs(args, {
      url: { type: 'string' },
      file: { type: 'string' },
      window: { type: 'string' },
      retries: { type: 'string' },
      timeout: { type: 'string' },
      'max-line-bytes': { type: 'string' },
    });
    if (values.help === true) {
      io.stdout.write(help);
      return 0;
    }
    const window = integerOption('window', values.window, WINDOW);
    const retries = integerOption('retries', values.retries, RETRIES, 0);
    const replyTimeoutMs = integerOption('timeout', values.timeout, REPLY_TIMEOUT_MS);
    const fromStdin =
      positionals.length === 0 || (positionals.length === 1 && positionals[0] === '-');
    if (values.file !== undefined && positionals.length > 0) {
      throw new UsageError('give purchases as arguments or with --file, not both');
    }
    if (positionals.length > 1 && positionals.includes('-')) {
      throw new UsageError('- (stdin) cannot be mixed with purchase arguments');
    }
    // Checked before anything is read or sent.
    const fromArgs =
      fromStdin || values.file !== undefined ? [] : purchasesFromArguments(positionals);
    const url = checkedUrl(values.url ?? defaultUrl(io.loadConfig()));
    // A line or frame longer than the ingest takes is answered here, never held or sent.
    const maxLineBytes = values['max-line-bytes'];
    const maxFrameBytes =
      maxLineBytes === undefined
        ? io.loadConfig().ingest.maxFrameBytes
        : integerOption('max-line-bytes', maxLineBytes, 0);

    let items: AsyncIterable<Outgoing> | Iterable<Outgoing>;
    let close = () => {};
    if (values.file !== undefined) {
      const path = values.file;
      const file = await open(path).catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read --file ${path}: ${error.code ?? error.message}`);
      });
      if ((await file.stat()).isDirectory()) {
        await file.close();
        throw new UsageError(`--file ${path} is a directory`);
      }
      const stream = file.createReadStream();
      close = () => stream.destroy();
      items = purchasesFromLines(readLines(stream, maxFrameBytes));
    } else if (fromStdin) {
      if (io.stdin.isTTY === true) {
        io.stderr.write('reading purchases from stdin, one JSON object per line; Ctrl-D ends\n');
      }
      close = () => io.stdin.destroy();
      items = purchasesFromLines(readLines(io.stdin, maxFrameBytes));
    } else {
      items = fromArgs;
    }

    const counts = tally();
    try {
      for await (const reply of sendPurchases(items, {
        url,
        window,
        retries,
        retryDelayMs: RETRY_DELAY_MS,
        replyTimeoutMs,
        maxFrameBytes,
      })) {
        counts.add(reply);
        if (!io.stdout.write(`${JSON.stringify(reply)}\n`)) await once(io.stdout, 'drain');
      }
    } catch (error) {
      io.stderr.write(`${counts.summary()}\n`);
      io.stderr.write(`send stopped: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    } finally {
      close();
    }
    io.stderr.write(`${counts.summary()}\n`);
    return counts.failed === 0 ? 0 : 1;
  },
};
