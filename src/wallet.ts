// The wallet service's process: `npm run wallet`. SIGTERM or SIGINT stops it cleanly.
import { runService } from './runService.ts';
import { startWalletService } from './services/walletService.ts';

await runService('wallet', startWalletService);
