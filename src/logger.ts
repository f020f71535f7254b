/** Severity of a log line, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger writing one JSON object per line. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

const serialise = (value: unknown): unknown =>
  value instanceof Error
    ? {
        name: value.name,
        message: value.message,
        ...('code' in value ? { code: value.code } : {}),
        ...(value.cause === undefined ? {} : { cause: serialise(value.cause) }),
      }
    : value;

/** Creates a JSON-lines logger on stderr (stdout stays free for a CLI's own output). */
export const createLogger = (
  level: LogLevel = 'info',
  bindings: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger => {
  const log =
    (lineLevel: LogLevel) =>
    (message: string, fields: Record<string, unknown> = {}): void => {
      if (RANK[lineLevel] < RANK[level]) return;
      const entry: Record<string, unknown> = {
        time: new Date().toISOString(),
        level: lineLevel,
        msg: message,
        ...bindings,
      };
      for (const [key, value] of Object.entries(fields)) entry[key] = serialise(value);
      write(`${JSON.stringify(entry)}\n`);
    };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (more) => createLogger(level, { ...bindings, ...more }, write),
  };
};
