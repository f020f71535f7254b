// `spendstream balance`: users' totals from the wallet over gRPC GetBalance.
import { status } from '@grpc/grpc-js';
import { connectWallet } from '../adapters/grpc/walletClient.ts';
import { integerOption, parseCommandArgs, UsageError, type Command } from './command.ts';

const TIMEOUT_MS = 5_000;

const help = `Usage: spendstream balance [options] <user_id…>

Asks the wallet for each user's balances (gRPC GetBalance, proto/wallet.proto) and
prints one JSON line per user on stdout, in argument order:

  {"user_id":"123","balances":{"total":49.99}}

A user the wallet has never seen has a total of 0. A failed call is reported on stderr
with its gRPC status name (INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED, …) and the
other users are still asked.

Options:
  --address <host:port>  the wallet's gRPC server (default WALLET_GRPC_ADDRESS)
  --timeout <ms>         deadline of each call (default ${TIMEOUT_MS})
  -h, --help             show this help

Exit status: 0 when every call succeeded, 1 when any failed, 2 for a mistake in the
command line or an invalid setting.
`;

/** `<STATUS_NAME>: <details>` for a grpc-js ServiceError; the message for anything else. */
const describe = (error: unknown): string => {
  const { code, details } = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    details?: unknown;
  };
  const name = typeof code === 'number' ? (status[code] as string | undefined) : undefined;
  if (name === undefined) return error instanceof Error ? error.message : String(error);
  return typeof details === 'string' && details !== '' ? `${name}: ${details}` : name;
};

/** `spendstream balance`. */
export const balance: Command = {
  help,
  run: async (args, io) => {
    const { values, positionals } = parseCommandArgs(args, {
      address: { type: 'string' },
      timeout: { type: 'string' },
    });
    if (values.help === true) {
      io.stdout.write(help);
      return 0;
    }
    const timeoutMs = integerOption('timeout', values.timeout, TIMEOUT_MS);
    if (positionals.length === 0) throw new UsageError('name at least one user id');
    const client = connectWallet(values.address ?? io.loadConfig().wallet.grpcAddress);
    let failed = 0;
    try {
      for (const userId of positionals) {
        try {
          const { balances } = await client.getBalance(userId, timeoutMs);
          io.stdout.write(`${JSON.stringify({ user_id: userId, balances })}\n`);
        } catch (error) {
          failed += 1;
          io.stderr.write(`${JSON.stringify(userId)}: ${describe(error)}\n`);
        }
      }
    } finally {
      client.close();
    }
    return failed === 0 ? 0 : 1;
  },
};
