/** Settings of {@link createRestartPolicy}. */
export interface RestartPolicyConfig {
  /** Wait before restarting a worker after its slot's first quick death. */
  readonly initialDelayMs: number;
  /** Longest wait before a restart; the wait doubles with each quick death up to this. */
  readonly maxDelayMs: number;
  /** A worker that ran this long before dying starts its slot's count of deaths afresh. */
  readonly stableAfterMs: number;
  /** Quick deaths in a row, in one slot, after which the service gives up. */
  readonly maxQuickDeaths: number;
}

/** Restarts after 0.5, 1, 2, 4 s; a fifth death within a minute of its start gives up. */
export const DEFAULT_RESTART_POLICY: RestartPolicyConfig = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  stableAfterMs: 60_000,
  maxQuickDeaths: 5,
};

/** What to do about a worker that died. */
export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number; readonly quickDeaths: number }
  | { readonly restart: false; readonly quickDeaths: number };

/** When to restart a dead worker, and when workers that keep dying are a loop to stop. */
export interface RestartPolicy {
  /** Worker slot `slot` died after running `uptimeMs`. */
  died(slot: number, uptimeMs: number): RestartDecision;
}

/**
 * Exponential backoff per worker slot: each death within `stableAfterMs` of the worker's
 * start doubles the wait before the next restart, and `maxQuickDeaths` of them in a row
 * mean the worker cannot run (a bug, a store it cannot reach): the service gives up and
 * exits non-zero for its own supervisor. A worker that ran past `stableAfterMs` before
 * dying is restarted after the initial wait, its slot's count cleared.
 */
export const createRestartPolicy = (
  config: RestartPolicyConfig = DEFAULT_RESTART_POLICY,
): RestartPolicy => {
  const quick = new Map<number, number>();
  return {
    died: (slot, uptimeMs) => {
      const quickDeaths = uptimeMs < config.stableAfterMs ? (quick.get(slot) ?? 0) + 1 : 1;
      quick.set(slot, quickDeaths);
      if (quickDeaths >= config.maxQuickDeaths) return { restart: false, quickDeaths };
      const delayMs = Math.min(config.maxDelayMs, config.initialDelayMs * 2 ** (quickDeaths - 1));
      return { restart: true, delayMs, quickDeaths };
    },
  };
};
