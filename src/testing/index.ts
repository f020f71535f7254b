// The `testing` entry: fakes of the ports and a marble helper, for users testing
// pipelines they compose from spendstream operators.
export type { HangOptions } from './faults.ts';
export { createMarbleScheduler } from './marbles.ts';
export {
  createMemoryCommitter,
  type MemoryCommitter,
  type OffsetCommit,
} from './memoryCommitter.ts';
export { createMemoryDeadLetters, type MemoryDeadLetters } from './memoryDeadLetters.ts';
export { createLogRepairer, type LogRepairer } from './logRepairer.ts';
export { createMemoryLog, type MemoryLog } from './memoryLog.ts';
export {
  createMemoryPartitionReader,
  type MemoryPartitionReader,
} from './memoryPartitionReader.ts';
export {
  createMemoryPurchasePublisher,
  type MemoryPurchasePublisher,
} from './memoryPurchasePublisher.ts';
export {
  createMemoryPurchaseStore,
  type MemoryPurchaseStore,
  type MemoryPurchaseStoreCall,
  type MemoryPurchaseStoreOptions,
  type PurchaseStoreMethod,
} from './memoryPurchaseStore.ts';
export {
  createMemoryWalletStore,
  type MemoryWalletStore,
  type MemoryWalletStoreCall,
  type WalletStoreMethod,
} from './memoryWalletStore.ts';
