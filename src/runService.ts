import cluster from 'node:cluster';
import { startPrimary } from './cluster/primary.ts';
import { linkToPrimary } from './cluster/worker.ts';
import { loadConfig, workerEnvironment, type Config } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { ownEndpoints, type ServiceEndpoints } from './servers/endpoints.ts';

/** Starts a service: what `src/ingest.ts` and `src/wallet.ts` run. */
export type StartService = (
  config: Config,
  logger: Logger,
  endpoints: ServiceEndpoints,
) => Promise<{ stop(): Promise<void>; readonly failure?: Promise<Error> }>;

/**
 * Runs one service in this process: starts it, and stops it cleanly on SIGTERM or SIGINT;
 * a failed start or an unclean stop exits non-zero.
 */
const runInProcess = async (
  name: string,
  start: StartService,
  config: Config,
  logger: Logger,
  endpoints: ServiceEndpoints,
  started: () => void = () => undefined,
): Promise<void> => {
  try {
    const service = await start(config, logger, endpoints);
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
    started();
  } catch (error) {
    logger.error(`${name} service failed to start`, { error });
    process.exit(1);
  }
};

/**
 * Runs the primary of a service's workers: SIGTERM or SIGINT drains them all, and it
 * exits once they have, non-zero if one did not stop cleanly, could not start, or kept
 * dying.
 */
const runPrimary = async (name: 'ingest' | 'wallet', config: Config, logger: Logger) => {
  const primary = startPrimary({
    workers: config.workers[name],
    environment: (n) => workerEnvironment(name, n, config),
    logger,
  });
  const stop = () => void primary.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  primary.started.catch((error: unknown) =>
    logger.error(`${name} service failed to start`, { error }),
  );
  const code = await primary.exited;
  logger.info(`${name} workers stopped`, { code });
  process.exit(code);
};

/**
 * Runs one service as its process: parses the settings and runs the service — in this
 * process, or, for a service named in `workers`, as `INGEST_WORKERS` or `WALLET_WORKERS`
 * worker processes sharing its ports.
 */
export const runService = async (
  name: string,
  start: StartService,
  { workers }: { readonly workers?: 'ingest' | 'wallet' } = {},
): Promise<void> => {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, { service: name });
  if (workers !== undefined && cluster.isWorker) {
    const link = linkToPrimary();
    await runInProcess(name, start, config, logger, link, () => link.started());
  } else if (workers !== undefined && config.workers[workers] > 1) {
    await runPrimary(workers, config, logger.child({ role: 'primary' }));
  } else {
    await runInProcess(name, start, config, logger, ownEndpoints);
  }
};
