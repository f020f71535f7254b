// `spendstream reconcile` and `npm run reconcile`: every user's total in Redis against
// the sum of their purchases in PostgreSQL.
import type { Writable } from 'node:stream';
import type { DatabasePool } from 'slonik';
import { createPostgresPool } from '../adapters/postgres/pool.ts';
import type { ReconcileReport } from '../core/reconcile.ts';
import { reconcile } from '../services/reconcile.ts';
import { createRedis } from '../adapters/redis/client.ts';
import type { Config } from '../config.ts';
import { StoreUnavailableError } from '../core/errors.ts';
import { centsToDecimal } from '../core/purchase.ts';
import { parseCommandArgs, UsageError, type Command } from './command.ts';

const help = `Usage: spendstream reconcile

Compares every user's total in Redis (the wallet's) with the sum of their purchases in
PostgreSQL and prints the users whose totals differ, as decimals. Purchases the wallet
has not applied yet also show as differences: run it again to tell lag from loss.
Reads DATABASE_URL, REDIS_URL and REDIS_KEY_PREFIX.

Options:
  -h, --help  show this help

Exit status: 0 when all totals agree, 1 when some differ, 2 when the comparison itself
failed (the reason on stderr) or for a mistake in the command line.
`;

const report = (result: ReconcileReport): string => {
  const { users, differences } = result;
  if (differences.length === 0) {
    return `PostgreSQL and Redis agree on the totals of all ${users} users.\n`;
  }
  const rows = differences.map((d) => [
    JSON.stringify(d.userId),
    centsToDecimal(d.postgresCents),
    centsToDecimal(d.redisCents),
  ]);
  const header = ['user', 'PostgreSQL', 'Redis'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = ([user = '', postgres = '', redis = '']: readonly string[]): string =>
    `${user.padEnd(widths[0] ?? 0)}  ${postgres.padStart(widths[1] ?? 0)}  ${redis.padStart(widths[2] ?? 0)}\n`;
  return [
    `${differences.length} of ${users} users have a Redis total that differs from PostgreSQL:\n`,
    line(header),
    ...rows.map(line),
    'Purchases the wallet has not applied yet also show here; run again to tell lag from loss.\n',
  ].join('');
};

/**
 * Runs the comparison and prints its report on `stdout`; resolves with the exit status:
 * 0 when all agree, 1 when some differ, 2 when the comparison itself failed (why, on `stderr`).
 */
export const runReconcile = async (io: {
  readonly loadConfig: () => Config;
  readonly stdout: Writable;
  readonly stderr: Writable;
}): Promise<number> => {
  // A command failing on a dead connection only says it ran out of retries; the
  // connection's own error says why (refused, unknown host, auth), so the message
  // carries that too.
  let redisConnectionError: Error | undefined;
  try {
    const config = io.loadConfig();
    // One connection is enough, and summing every purchase may take longer than the
    // services' statement timeout allows a request.
    const pool: DatabasePool = await createPostgresPool({
      ...config.postgres,
      poolSize: 1,
      statementTimeoutMs: 30 * 60_000,
    });
    const redis = createRedis(config.redis);
    redis.on('error', (error: Error) => {
      redisConnectionError = error;
    });
    try {
      const result = await reconcile({ pool, redis });
      io.stdout.write(report(result));
      return result.differences.length === 0 ? 0 : 1;
    } finally {
      redis.disconnect();
      await pool.end();
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const redisDown = error instanceof StoreUnavailableError && error.store === 'redis';
    const reason =
      redisDown && redisConnectionError !== undefined ? ` (${redisConnectionError.message})` : '';
    io.stderr.write(`reconcile failed: ${message}${reason}\n`);
    return 2;
  }
};

/** `spendstream reconcile`. */
export const reconcileCommand: Command = {
  help,
  run: async (args, io) => {
    const { values, positionals } = parseCommandArgs(args, {});
    if (values.help === true) {
      io.stdout.write(help);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    return runReconcile(io);
  },
};
