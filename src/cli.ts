#!/usr/bin/env node
// The `spendstream` command (package.json `bin`; `npm run cli -- …` from a checkout):
// `spendstream <command> [options]`, one module per command in src/cli/.
import { readFileSync } from 'node:fs';
import { UsageError, type Command, type CommandIo } from './cli/command.ts';
import { loadConfig } from './config.ts';
import { ConfigError } from './core/errors.ts';

// Imported when run, so that one command does not load the others' clients.
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  send: {
    summary: 'send purchases to the ingest over WebSocket, print each reply',
    load: async () => (await import('./cli/send.ts')).send,
  },
  balance: {
    summary: "print users' balances from the wallet (gRPC GetBalance)",
    load: async () => (await import('./cli/balance.ts')).balance,
  },
  reconcile: {
    summary: 'compare the totals in Redis with the purchases in PostgreSQL',
    load: async () => (await import('./cli/reconcile.ts')).reconcileCommand,
  },
};

const HELP = `Usage: spendstream <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(10)} ${summary}`)
  .join('\n')}

Run 'spendstream <command> --help' for a command's options. Settings (WS_PORT,
WALLET_GRPC_ADDRESS, DATABASE_URL, …) are read from the environment as the services
read them; see docs/configuration.md.

Options:
  -h, --help     show this help
  -v, --version  print the version
`;

// package.json is one level above both src/cli.ts and dist/cli.js.
const version = (): string =>
  (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    }
  ).version;

/** Runs `spendstream <args>`; resolves with the exit status. */
const runCli = async (args: readonly string[], io: CommandIo): Promise<number> => {
  const [name, ...rest] = args;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '-v' || name === '--version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    io.stderr.write(`spendstream: unknown command ${JSON.stringify(name)}\n\n${HELP}`);
    return 2;
  }
  try {
    return await (await entry.load()).run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(
        `spendstream ${name}: ${error.message}\nRun 'spendstream ${name} --help' for usage.\n`,
      );
      return 2;
    }
    if (error instanceof ConfigError) {
      io.stderr.write(`spendstream ${name}: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(
      `spendstream ${name}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
};

// A reader that goes away (`spendstream send … | head -1`) ends the run quietly, but a run
// it cut short did not succeed: replies went unread, purchases may be unsent. Exit 1 then;
// once the command has finished, with its own status (only its output was not all read).
let finished = false;
const readerGone = (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(finished ? process.exitCode : 1);
};
process.stdout.on('error', readerGone);
process.stderr.on('error', readerGone);

// exitCode rather than exit(): output may still be flushing to a pipe.
process.exitCode = await runCli(process.argv.slice(2), {
  // Only touched by a command reading it, which then keeps the process alive until it ends.
  get stdin() {
    return process.stdin;
  },
  stdout: process.stdout,
  stderr: process.stderr,
  loadConfig: () => loadConfig(),
});
finished = true;
