import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

type Reply = { balances: Record<string, number> };
type Call = (
  request: { user_id: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: Reply) => void,
) => void;

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../proto/wallet.proto', import.meta.url)),
  { keepCase: true, longs: String, defaults: true },
);
const walletPackage = grpc.loadPackageDefinition(definition)['trade_engine_wallet'] as unknown as {
  WalletService: grpc.ServiceClientConstructor;
};

/** A grpc-js `GetBalance` client answering with the total in cents (as users call it). */
export interface BalanceCaller {
  /** Calls GetBalance; `done` gets the total in cents, or the gRPC status code. */
  totalCents(userId: string, done: (error: number | null, cents?: number) => void): void;
  close(): void;
}

export const connectBalanceCaller = (address: string, deadlineMs = 5_000): BalanceCaller => {
  const client = new walletPackage.WalletService(address, grpc.credentials.createInsecure());
  const call = (client['GetBalance'] as Call).bind(client);
  return {
    totalCents(userId, done) {
      call({ user_id: userId }, { deadline: Date.now() + deadlineMs }, (error, reply) => {
        if (error !== null || reply === undefined) return done(error?.code ?? grpc.status.UNKNOWN);
        done(null, Math.round((reply.balances['total'] ?? 0) * 100));
      });
    },
    close: () => client.close(),
  };
};
