// What a test opens through the harness is closed when the test ends, in reverse order of
// opening, through one `t.after` per test: a start that failed part-way closes what it
// had opened, and nothing outlives the test that opened it.
import type { SuiteContext } from 'node:test';

/** Something that runs hooks when it ends, as a node:test `TestContext` does. */
export interface Hooks {
  after(fn: () => unknown): void;
}

/**
 * The `t` of a test or of a hook. A top-level hook's `t` is a `TestContext` (its `after`
 * runs when the file's tests are done); a `describe` block's hooks get a `SuiteContext`,
 * which has no `after`, and is refused at run time.
 */
export type TestHooks = Hooks | SuiteContext;

const stacks = new WeakMap<Hooks, AsyncDisposableStack>();

/** Has `close` run when `t` ends, before whatever was registered on `t` earlier. */
export const onTeardown = (t: TestHooks, close: () => unknown): void => {
  if (!('after' in t)) {
    throw new TypeError(`no teardown in a describe block's hook (${t.name}): use a test's t`);
  }
  let stack = stacks.get(t);
  if (stack === undefined) {
    const opened = new AsyncDisposableStack();
    stacks.set(t, opened);
    t.after(() => opened.disposeAsync());
    stack = opened;
  }
  stack.defer(async () => {
    await close();
  });
};

/** Hooks of their own for a caller outside a test's hooks: `close()` tears down. */
export interface TeardownScope extends Hooks {
  close(): Promise<void>;
}

/** A {@link TeardownScope}: what is registered on it runs when it is closed. */
export const teardownScope = (): TeardownScope => {
  const hooks: Array<() => unknown> = [];
  return {
    after: (fn) => {
      hooks.push(fn);
    },
    close: async () => {
      for (const hook of hooks.splice(0)) await hook();
    },
  };
};
