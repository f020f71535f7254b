import { pino, stdSerializers, type Logger as PinoLogger } from 'pino';

/** Severity of a log line, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A structured logger writing one JSON object per line. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

type Serialised = Record<string, unknown> & { cause?: unknown };

const addNames = (serialised: Serialised, error: unknown): void => {
  if (!(error instanceof Error)) return;
  serialised['name'] ??= error.name;
  if (typeof serialised.cause === 'object' && serialised.cause !== null) {
    addNames(serialised.cause as Serialised, error.cause);
  }
};

/**
 * pino's error serializer (type, message, stack, own fields such as `code` and
 * `retryable`, and the `cause` chain), plus each error's `name`: a SpendstreamError's
 * name is its own field, a built-in error's is on its prototype.
 */
const serialiseError = (value: unknown): unknown => {
  if (!(value instanceof Error)) return value;
  const serialised = stdSerializers.errWithCause(value) as unknown as Serialised;
  addNames(serialised, value);
  return serialised;
};

const wrap = (logger: PinoLogger): Logger => ({
  debug: (message, fields) => logger.debug(fields ?? {}, message),
  info: (message, fields) => logger.info(fields ?? {}, message),
  warn: (message, fields) => logger.warn(fields ?? {}, message),
  error: (message, fields) => logger.error(fields ?? {}, message),
  child: (bindings) => wrap(logger.child(bindings)),
});

/**
 * Creates a pino logger writing JSON lines to stderr (stdout stays free for a CLI's own
 * output), or to `write` (tests capture lines that way): `level` as its name, `time` in
 * ISO 8601, `msg`, the bindings, then the fields; an Error under `error` is serialised
 * with its name, message, code and cause. Lines below `level` cost one no-op call.
 */
export const createLogger = (
  level: LogLevel = 'info',
  bindings: Record<string, unknown> = {},
  write?: (line: string) => void,
): Logger =>
  wrap(
    pino(
      {
        level,
        base: { pid: process.pid, ...bindings },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        errorKey: 'error',
        serializers: { error: serialiseError, err: serialiseError },
      },
      // Synchronous: the last lines before a process.exit (a failed start) are not lost,
      // and at the default level there are few of them.
      write === undefined ? pino.destination({ dest: 2, sync: true }) : { write },
    ),
  );

/**
 * Logs the first of a run of lines at once, then at most one per `intervalMs`, each with
 * how many were held back since the last (`suppressed`): an outage fails every call, and
 * one line per call would bury everything else. `clock` reads the time in milliseconds (tests
 * pass one of their own).
 */
export const createThrottledLog = (
  logger: Logger,
  level: LogLevel = 'warn',
  intervalMs = 10_000,
  clock: () => number = () => performance.now(),
): ((message: string, fields?: Record<string, unknown>) => void) => {
  let lastAt = -Infinity;
  let suppressed = 0;
  return (message, fields) => {
    const now = clock();
    if (now - lastAt < intervalMs) {
      suppressed += 1;
      return;
    }
    logger[level](message, { ...fields, suppressed });
    lastAt = now;
    suppressed = 0;
  };
};
