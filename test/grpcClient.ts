// Tests call the wallet the way a user of the proof of concept's contract would.
export { connectWallet, type WalletClient } from '../src/adapters/grpc/walletClient.ts';
