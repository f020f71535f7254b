// The `spendstream` entry: the operators and pipelines, and the types a pipeline of one's
// own needs around them (the ports it takes, the purchase it carries).
export type {
  ApplyOptions,
  ApplyResult,
  BalanceReader,
  BucketMarkers,
  BucketRepairer,
  DeadLetterPublisher,
  LostBucket,
  OffsetCommitter,
  PartitionPage,
  PartitionReader,
  PartitionSpan,
  PurchasePublisher,
  PurchaseStore,
  SaveResult,
  StoredPurchase,
  WalletStore,
} from '../core/ports.ts';
export type { WalletRecord } from '../core/records.ts';
export type { Purchase } from '../core/purchase.ts';
export { ingestPipeline, type IngestDeps } from './ingestPipeline.ts';
export { applyBatch, type ApplyBatchDeps } from './operators/applyBatch.ts';
export { batchPurchases, type BatchPurchasesConfig } from './operators/batchPurchases.ts';
export { callStore, type StoreCallConfig } from './callStore.ts';
export { decodeBatch, type PurchaseDecoder } from './operators/decodeBatch.ts';
export {
  decodeFrame,
  decodeFrameText,
  type DecodeFrameConfig,
  type DecodedFrame,
  type DecodedItem,
} from './operators/decodeFrame.ts';
export { failBatch } from './failBatch.ts';
export { persistBatch } from './operators/persistBatch.ts';
export { publishBatch } from './operators/publishBatch.ts';
export { resolveOutcomes } from './operators/resolveOutcomes.ts';
export { retryTransient, type RetryTransientConfig } from './operators/retryTransient.ts';
export { purchaseSchema } from './purchaseSchema.ts';
export type { BatchState, Outcome, PurchaseResult, Submission } from './types.ts';
export {
  repairPartition,
  RepairInterruptedError,
  type RepairDeps,
  type RepairReport,
  type RepairRequest,
} from './repairPartition.ts';
export { walletPipeline, type WalletDeps } from './walletPipeline.ts';
export type { AppliedBatch, DecodedBatch } from './walletTypes.ts';
export type { ConsumedBatch, ConsumedRecord, PoisonRecord } from '../core/records.ts';
