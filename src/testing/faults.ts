// Scripted misbehaviour shared by the memory fakes: each faked port method owns a queue.

/** How a hung call behaves before going silent. */
export interface HangOptions {
  /** The call does its work, then never answers (a lost reply): the caller cannot tell. */
  readonly applied?: boolean;
}

type Fault =
  | { readonly kind: 'reject'; readonly error: Error }
  | { readonly kind: 'hang'; readonly applied: boolean };

/** The failure injection of one faked method, and the gate its calls go through. */
export interface FaultQueue {
  /** The next `count` calls reject with `error` and have no effect. */
  failNext(count: number, error: Error): void;
  /** The next `count` calls never settle, so the caller's timeout is what ends them. */
  hangNext(count: number, options?: HangOptions): void;
  /** Every call rejects with `error` until this is called with undefined; queued faults go first. */
  setFailure(error: Error | undefined): void;
  /** Performs `effect` as the faked call and answers with its result, unless a fault is due. */
  call<T>(effect: () => T): Promise<T>;
}

/** Creates an empty {@link FaultQueue}: calls succeed until told otherwise. */
export const createFaultQueue = (): FaultQueue => {
  const queued: Fault[] = [];
  let failure: Fault | undefined;
  const enqueue = (count: number, fault: Fault) => {
    for (let i = 0; i < count; i += 1) queued.push(fault);
  };
  return {
    failNext: (count, error) => enqueue(count, { kind: 'reject', error }),
    hangNext: (count, { applied = false } = {}) => enqueue(count, { kind: 'hang', applied }),
    setFailure: (error) => {
      failure = error === undefined ? undefined : { kind: 'reject', error };
    },
    call: <T>(effect: () => T): Promise<T> => {
      const fault = queued.shift() ?? failure;
      // The effect runs at call time, as the real store's work starts at once; a throw
      // from it becomes a rejection, as it would in an async adapter.
      if (fault === undefined) return new Promise<T>((resolve) => resolve(effect()));
      if (fault.kind === 'reject') return Promise.reject(fault.error);
      if (fault.applied) effect();
      return new Promise<T>(() => {});
    },
  };
};
