// The wallet service's process: `npm run wallet`. SIGTERM or SIGINT stops it cleanly.
import { loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { startWalletService } from './walletService.ts';

const config = loadConfig();
const logger = createLogger(config.logLevel, { service: 'wallet' });
try {
  const service = await startWalletService(config, logger);
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
  logger.error('wallet service failed to start', { error });
  process.exit(1);
}
