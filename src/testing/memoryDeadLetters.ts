import type { DeadLetterPublisher } from '../core/ports.ts';
import type { PoisonRecord } from '../core/records.ts';
import { createMemoryLog, type MemoryLog } from './memoryLog.ts';

/** An in-memory {@link DeadLetterPublisher} that shows what it published and fails on request. */
export type MemoryDeadLetters = DeadLetterPublisher & MemoryLog<PoisonRecord>;

/** Creates a {@link MemoryDeadLetters}: a dead-letter topic that records what it is sent. */
export const createMemoryDeadLetters = (): MemoryDeadLetters => createMemoryLog<PoisonRecord>();
