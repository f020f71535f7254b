// The `testing` entry: fakes of the ports and a marble helper, for users testing
// pipelines they compose from spendstream operators.
export type { HangOptions } from './faults.ts';
export { createMarbleScheduler } from './marbles.ts';
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
