// `node src/walletHealthcheck.ts` (or dist/walletHealthcheck.js in the image): asks the
// local wallet's standard gRPC health service whether it is SERVING; exit 0 if so.
import { checkWalletHealth } from './adapters/grpc/walletClient.ts';
import { loadConfig } from './config.ts';

const config = loadConfig();
const host = config.grpc.host === '0.0.0.0' ? '127.0.0.1' : config.grpc.host;
const status = await checkWalletHealth(`${host}:${config.grpc.port}`).catch(
  (error: Error) => error.message,
);
process.stdout.write(`${status}\n`);
process.exitCode = status === 'SERVING' ? 0 : 1;
