import type { OffsetCommitter } from '../core/ports.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** One offset commit: the group has applied everything of the partition before `offset`. */
export interface OffsetCommit {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** An in-memory {@link OffsetCommitter} that shows what it committed and fails on request. */
export interface MemoryCommitter extends OffsetCommitter {
  /** Every commit that succeeded, in the order it was made. */
  readonly commits: readonly OffsetCommit[];
  /** Every commit, failed ones included, in the order it was made. */
  readonly calls: readonly OffsetCommit[];
  /** The group's position in a partition: the offset of its last successful commit. */
  committed(topic: string, partition: number): string | undefined;
  /** The next `count` calls reject with `error`, without committing. */
  failNext(count: number, error: Error): void;
  /** The next `count` calls never answer (`applied`: after committing, a lost reply). */
  hangNext(count: number, options?: HangOptions): void;
  /** Every call rejects with `error` until called with undefined. */
  setFailure(error: Error | undefined): void;
}

/** Creates a {@link MemoryCommitter}: a consumer group's offsets that records each commit. */
export const createMemoryCommitter = (): MemoryCommitter => {
  const commits: OffsetCommit[] = [];
  const calls: OffsetCommit[] = [];
  const faults = createFaultQueue();
  return {
    commits,
    calls,
    committed: (topic, partition) =>
      commits.findLast((c) => c.topic === topic && c.partition === partition)?.offset,
    commit: (topic, partition, offset) => {
      const commit = { topic, partition, offset };
      calls.push(commit);
      return faults.call(() => {
        commits.push(commit);
      });
    },
    failNext: (count, error) => faults.failNext(count, error),
    hangNext: (count, options) => faults.hangNext(count, options),
    setFailure: (error) => faults.setFailure(error),
  };
};
