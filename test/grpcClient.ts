// A client of proto/wallet.proto, built the way a user of the Go proof of concept's
// contract would build one.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** The `WalletService` client of proto/wallet.proto. */
export interface WalletClient {
  getBalance(userId: string, deadlineMs?: number): Promise<{ balances: Record<string, number> }>;
  close(): void;
}

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../proto/wallet.proto', import.meta.url)),
  { keepCase: true, longs: String, defaults: true },
);
const walletPackage = grpc.loadPackageDefinition(definition)['trade_engine_wallet'] as unknown as {
  WalletService: grpc.ServiceClientConstructor;
};

/** Connects to `address` without TLS. */
export const connectWallet = (address: string): WalletClient => {
  const client = new walletPackage.WalletService(address, grpc.credentials.createInsecure());
  type Reply = { balances: Record<string, number> };
  type Call = (
    request: { user_id: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, reply?: Reply) => void,
  ) => void;
  const call = (client['GetBalance'] as Call).bind(client);
  return {
    getBalance: (userId, deadlineMs = 5_000) =>
      new Promise((resolve, reject) => {
        call({ user_id: userId }, { deadline: Date.now() + deadlineMs }, (error, reply) =>
          error === null && reply !== undefined
            ? resolve(reply)
            : reject(error ?? new Error('no reply')),
        );
      }),
    close: () => client.close(),
  };
};
