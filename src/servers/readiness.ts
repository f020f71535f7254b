import type { ServerResponse } from 'node:http';
import type { HttpRoute } from './http.ts';

/**
 * One readiness check: whether a dependency serves now, or serves only in part
 * (`'partial'`: reported, yet no reason to send the work elsewhere). Thrown errors count
 * as false.
 */
export type ReadinessCheck = () => boolean | 'partial' | Promise<boolean | 'partial'>;

/** A check's state in a `/readyz` reply. */
export type CheckState = 'ok' | 'partial' | 'unavailable';

/** The body of a `/readyz` reply. */
export interface ReadinessReport {
  readonly status: CheckState;
  readonly checks: Readonly<Record<string, CheckState>>;
}

/** `promise`'s value, or `fallback` when it fails or takes longer than `timeoutMs`. */
export const within = <T, F>(promise: Promise<T>, timeoutMs: number, fallback: F): Promise<T | F> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(fallback);
      },
    );
  });

/**
 * Runs `call` at most once at a time: callers arriving while it runs share its outcome.
 * Probes and scrapes that come faster than a store answers (a stopped PostgreSQL can take
 * seconds to refuse) then never pile up requests on it. A call still unsettled after
 * `abandonAfterMs` is no longer shared, so one that hangs (a blackholed connection can
 * wait minutes for TCP to give up) does not keep failing every later probe once the store
 * is back: the next caller starts a fresh one.
 */
export const coalesced = <T>(
  call: () => Promise<T>,
  abandonAfterMs = Number.POSITIVE_INFINITY,
): (() => Promise<T>) => {
  let running: Promise<T> | undefined;
  let startedAt = 0;
  return () => {
    if (running !== undefined && performance.now() - startedAt > abandonAfterMs) {
      running = undefined;
    }
    if (running === undefined) {
      startedAt = performance.now();
      const current: Promise<T> = call().finally(() => {
        if (running === current) running = undefined;
      });
      running = current;
    }
    return running;
  };
};

/** How many of its own timeouts a hung ping is shared before a fresh one replaces it. */
export const ABANDON_AFTER_TIMEOUTS = 5;

/**
 * A check that passes once `ping` resolves within `timeoutMs`. One ping runs at a time;
 * a probe arriving while a slow one runs waits for that one (up to its own timeout).
 */
export const pingCheck = (ping: () => Promise<unknown>, timeoutMs: number): ReadinessCheck => {
  const shared = coalesced(ping, ABANDON_AFTER_TIMEOUTS * timeoutMs);
  return () =>
    within(
      shared().then(() => true),
      timeoutMs,
      false,
    );
};

/** Runs every check at once and reports each, `ok` overall only when all pass. */
export const checkReadiness = async (
  checks: Readonly<Record<string, ReadinessCheck>>,
): Promise<ReadinessReport> => {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name): Promise<CheckState> => {
      try {
        const result = await checks[name]?.();
        return result === true ? 'ok' : result === 'partial' ? 'partial' : 'unavailable';
      } catch {
        return 'unavailable';
      }
    }),
  );
  const states: Record<string, CheckState> = {};
  names.forEach((name, i) => {
    states[name] = results[i] ?? 'unavailable';
  });
  const ready = results.every((state) => state !== 'unavailable');
  return { status: ready ? 'ok' : 'unavailable', checks: states };
};

/**
 * `/readyz`: `{"status":"ok"|"unavailable","checks":{...}}`, 200 when every check passes
 * (in part or whole) and 503 otherwise, so a load balancer or orchestrator stops sending
 * work here.
 */
export const readinessRoute =
  (checks: Readonly<Record<string, ReadinessCheck>>): HttpRoute =>
  async (_request, response) => {
    writeReadiness(response, await checkReadiness(checks));
  };

/** Answers a `/readyz` request with `report`: 200 when ready, 503 otherwise. */
export const writeReadiness = (response: ServerResponse, report: ReadinessReport): void => {
  response
    .writeHead(report.status === 'ok' ? 200 : 503, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
    })
    .end(JSON.stringify(report));
};

/** `/healthz`: the process is alive and its event loop turns (200). */
export const livenessRoute: HttpRoute = (_request, response) => {
  response
    .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end('{"status":"ok"}');
};
