// A client of proto/wallet.proto, as any user of the proof of concept's contract builds
// one: the CLI, the ingest's status page and the tests read balances through it.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** The `WalletService` client of proto/wallet.proto. */
export interface WalletClient {
  /** Calls `GetBalance`; rejects with the grpc-js `ServiceError` (its `code`) on failure. */
  getBalance(userId: string, deadlineMs?: number): Promise<{ balances: Record<string, number> }>;
  close(): void;
}

type Reply = { balances: Record<string, number> };
type Call = (
  request: { user_id: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: Reply) => void,
) => void;

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../../proto/wallet.proto', import.meta.url)),
  { keepCase: true, longs: String, defaults: true },
);
const walletPackage = grpc.loadPackageDefinition(definition)['trade_engine_wallet'] as unknown as {
  WalletService: grpc.ServiceClientConstructor;
};

/** Connects to the wallet's gRPC server at `address` (`host:port`) without TLS. */
export const connectWallet = (address: string): WalletClient => {
  const client = new walletPackage.WalletService(address, grpc.credentials.createInsecure());
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
