// How a service owns what it opens: each resource registers its close on an
// AsyncDisposableStack where it is opened, so a start that fails part-way closes what it
// opened in reverse order, and a running service's stop is its drain, then the same closes.

/**
 * A stop that runs once: `drain` (stop taking work, finish what is in hand), then every
 * resource of `owned` closed in reverse order of opening. A second call joins the first.
 */
export const drainThenDispose = (
  drain: () => Promise<void>,
  owned: AsyncDisposableStack,
): (() => Promise<void>) => {
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      try {
        await drain();
      } finally {
        await owned.disposeAsync();
      }
    })());
};

/** A promise settled by hand: the service's `failure`, reported once it happened. */
export const failureSignal = (): {
  readonly failure: Promise<Error>;
  readonly report: (error: Error) => void;
} => {
  const { promise, resolve } = Promise.withResolvers<Error>();
  return { failure: promise, report: resolve };
};
