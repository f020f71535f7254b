// Tests and the benchmark wait for what happens in the background — a consumer catching
// up, a socket closing, a gauge settling — by asking again until it holds.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/** How {@link eventually} polls and what it does when time runs out. */
export interface EventuallyOptions {
  /** How long to keep asking; 30 s unless set. */
  readonly timeoutMs?: number;
  /** The pause between two questions; 50 ms unless set, none at 0 (a busy poll). */
  readonly intervalMs?: number;
  /**
   * At the timeout: fail (the default), or resolve false for a caller that carries on and
   * reports what it found (a benchmark measuring anyway, a check listing what is off).
   */
  readonly onTimeout?: 'fail' | 'resolve';
}

/**
 * Asks `check` until it holds and resolves true; past `timeoutMs` fails naming `what`
 * (a function is called only then, so it can say what was last seen). An error thrown by
 * `check` fails at once: an invariant broken while waiting is not waited out.
 */
export const eventually = async (
  what: string | (() => string),
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 50, onTimeout = 'fail' }: EventuallyOptions = {},
): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      if (onTimeout === 'resolve') return false;
      assert.fail(`${typeof what === 'string' ? what : what()}: not within ${timeoutMs} ms`);
    }
    if (intervalMs > 0) await sleep(intervalMs);
  }
  return true;
};
