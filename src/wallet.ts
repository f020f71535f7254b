// The wallet service's process: `npm run wallet`, in WALLET_WORKERS worker processes of one
// consumer group when more than one. SIGTERM or SIGINT stops it cleanly.
import { runService } from './runService.ts';
import { startWalletService } from './services/walletService.ts';

await runService('wallet', startWalletService, { workers: 'wallet' });
