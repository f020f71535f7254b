import { loadConfig, type Config } from './config.ts';
import { createLogger, type Logger } from './logger.ts';

/**
 * Runs one service as its process: parses the settings, starts it, and stops it cleanly
 * on SIGTERM or SIGINT; a failed start or an unclean stop exits non-zero.
 */
export const runService = async (
  name: string,
  start: (
    config: Config,
    logger: Logger,
  ) => Promise<{ stop(): Promise<void>; readonly failure?: Promise<Error> }>,
): Promise<void> => {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, { service: name });
  try {
    const service = await start(config, logger);
    const stop = () => {
      service.stop().then(
        () => process.exit(),
        (error: unknown) => {
          logger.error('unclean stop', { error });
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // A service that had to stop by itself exits non-zero, for its supervisor to restart.
    void service.failure?.then((error) => {
      logger.error(`${name} service stopped itself`, { error });
      process.exit(1);
    });
  } catch (error) {
    logger.error(`${name} service failed to start`, { error });
    process.exit(1);
  }
};
