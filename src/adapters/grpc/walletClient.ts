// A client of proto/wallet.proto, as any user of the proof of concept's contract builds
// one: the CLI, the ingest's status page, the bench and the tests read balances through it.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** The `WalletService` client of proto/wallet.proto. */
export interface WalletClient {
  /** Calls `GetBalance`; rejects with the grpc-js `ServiceError` (its `code`) on failure. */
  getBalance(userId: string, deadlineMs?: number): Promise<BalanceReply>;
  close(): void;
}

/** What `GetBalance` answers. */
export type BalanceReply = { balances: Record<string, number> };

/** `GetBalance` as grpc-js calls it: one callback a call, no promise. */
export type GetBalanceCall = (
  request: { user_id: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: BalanceReply) => void,
) => void;

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../../../proto/wallet.proto', import.meta.url)),
  { keepCase: true, longs: String, defaults: true },
);
const walletPackage = grpc.loadPackageDefinition(definition)['trade_engine_wallet'] as unknown as {
  WalletService: grpc.ServiceClientConstructor;
};

/**
 * Connects a grpc-js `WalletService` client to `address` (`host:port`) without TLS and
 * hands out its `GetBalance` in callback style (the bench's load calls it so).
 */
export const connectWalletCallbacks = (
  address: string,
): { getBalance: GetBalanceCall; close: () => void } => {
  const client = new walletPackage.WalletService(address, grpc.credentials.createInsecure());
  return {
    getBalance: (client['GetBalance'] as GetBalanceCall).bind(client),
    close: () => client.close(),
  };
};

/** Connects to the wallet's gRPC server at `address` (`host:port`) without TLS. */
export const connectWallet = (address: string): WalletClient => {
  const { getBalance, close } = connectWalletCallbacks(address);
  return {
    getBalance: (userId, deadlineMs = 5_000) =>
      new Promise((resolve, reject) => {
        getBalance({ user_id: userId }, { deadline: Date.now() + deadlineMs }, (error, reply) =>
          error === null && reply !== undefined
            ? resolve(reply)
            : reject(error ?? new Error('no reply')),
        );
      }),
    close,
  };
};

type Check = (
  request: { service: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply?: { status: string }) => void,
) => void;

const healthDefinition = protoLoader.loadSync('health/v1/health.proto', {
  // The health proto is known by its path under the package's proto root.
  includeDirs: [resolve(dirname(healthProtoPath), '../..')],
  keepCase: true,
  enums: String,
});
const Health = (
  grpc.loadPackageDefinition(healthDefinition)['grpc'] as unknown as {
    health: { v1: { Health: grpc.ServiceClientConstructor } };
  }
).health.v1.Health;

/**
 * Asks the wallet's standard gRPC health service at `address` for the server's status
 * (`SERVING`, `NOT_SERVING`); rejects with the grpc-js `ServiceError` when the call fails.
 */
export const checkWalletHealth = (address: string, deadlineMs = 3_000): Promise<string> => {
  const health = new Health(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolveStatus, reject) => {
    (health['Check'] as Check).call(
      health,
      { service: '' },
      { deadline: Date.now() + deadlineMs },
      (error, reply) =>
        error === null ? resolveStatus(reply?.status ?? 'UNKNOWN') : reject(error),
    );
  }).finally(() => health.close());
};
