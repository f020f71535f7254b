import type { PurchasePublisher } from '../core/ports.ts';
import type { Purchase } from '../core/purchase.ts';
import { createMemoryLog, type MemoryLog } from './memoryLog.ts';

/** An in-memory {@link PurchasePublisher} that shows what it published and fails on request. */
export type MemoryPurchasePublisher = PurchasePublisher & MemoryLog<Purchase>;

/** Creates a {@link MemoryPurchasePublisher}: a topic that records, in order, what it is sent. */
export const createMemoryPurchasePublisher = (): MemoryPurchasePublisher =>
  createMemoryLog<Purchase>(({ id, userId, amountCents }) => ({ id, userId, amountCents }));
