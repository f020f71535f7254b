// The ingest service's process: `npm run ingest`. SIGTERM or SIGINT drains it.
import { loadConfig } from './config.ts';
import { startIngestService } from './ingestService.ts';
import { createLogger } from './logger.ts';

const config = loadConfig();
const logger = createLogger(config.logLevel, { service: 'ingest' });
try {
  const service = await startIngestService(config, logger);
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
} catch (error) {
  logger.error('ingest service failed to start', { error });
  process.exit(1);
}
