import { lastValueFrom } from 'rxjs';
import type { BucketRepairer, PartitionReader, WalletStore } from '../core/ports.ts';
import { decodePurchaseEvent } from '../core/purchaseEvent.ts';
import { repairPartition, type RepairDeps, type RepairReport } from '../streams/repairPartition.ts';

/** A {@link BucketRepairer} that records the report of every repair it ran. */
export interface LogRepairer extends BucketRepairer {
  readonly reports: readonly RepairReport[];
}

/**
 * The simplest repairer: each request repaired at once, in full, by `repairPartition` over
 * `reader` (e.g. a memory partition reader holding the log a test wrote) into `store`.
 */
export const createLogRepairer = (
  store: WalletStore,
  reader: PartitionReader,
  storeCall: RepairDeps['storeCall'],
): LogRepairer => {
  const reports: RepairReport[] = [];
  return {
    reports,
    repair: async (topic, partition, lost, to) => {
      reports.push(
        await lastValueFrom(
          repairPartition(
            { topic, partition, lost, to },
            { reader, store, decode: decodePurchaseEvent, storeCall },
          ),
        ),
      );
    },
  };
};
