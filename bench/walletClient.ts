import { status } from '@grpc/grpc-js';
import { connectWalletCallbacks } from '../src/adapters/grpc/walletClient.ts';

/** A grpc-js `GetBalance` client answering with the total in cents (as users call it). */
export interface BalanceCaller {
  /** Calls GetBalance; `done` gets the total in cents, or the gRPC status code. */
  totalCents(userId: string, done: (error: number | null, cents?: number) => void): void;
  close(): void;
}

export const connectBalanceCaller = (address: string, deadlineMs = 5_000): BalanceCaller => {
  const { getBalance, close } = connectWalletCallbacks(address);
  return {
    totalCents(userId, done) {
      getBalance({ user_id: userId }, { deadline: Date.now() + deadlineMs }, (error, reply) => {
        if (error !== null || reply === undefined) return done(error?.code ?? status.UNKNOWN);
        done(null, Math.round((reply.balances['total'] ?? 0) * 100));
      });
    },
    close,
  };
};
