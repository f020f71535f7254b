// What every command of the CLI shares: its streams, how it reports a mistake in its
// arguments, and the checks of option values.
import type { Readable, Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config.ts';

/** The process around a command, injected so that tests can run it in-process. */
export interface CommandIo {
  readonly stdin: Readable & { readonly isTTY?: boolean };
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Parses the settings; called only by commands that need them, so `--help` never fails. */
  readonly loadConfig: () => Config;
}

/** One `spendstream <name>` command. */
export interface Command {
  /** The text `spendstream <name> --help` prints. */
  readonly help: string;
  /** Runs the command on its arguments (after the command name); resolves with the exit code. */
  run(args: readonly string[], io: CommandIo): Promise<number>;
}

/** A mistake in the command line: reported with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `node:util` parseArgs, strict, with `--help`/`-h` added; its errors become {@link UsageError}s. */
export const parseCommandArgs = <const O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
) => {
  try {
    return parseArgs({
      args: [...args],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
};

/** The value of option `--name` as a whole number of at least `min`. */
export const integerOption = (
  name: string,
  value: string | undefined,
  fallback: number,
  min = 1,
): number => {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min) {
    throw new UsageError(`--${name} must be a whole number of at least ${min}, not ${value}`);
  }
  return parsed;
};
