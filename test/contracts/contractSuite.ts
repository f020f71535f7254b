// What every port's contract suite shares: each test opens the implementation afresh and
// closes it after, and a break known in one implementation is reported, not hidden.
import { suite, test, type TestContext } from 'node:test';

/** How one implementation takes part in a contract suite. */
export interface ContractOptions {
  /**
   * Tests this implementation is known to fail, by name, with why. They still run, and are
   * reported as todo instead of failing the run, until the implementation is fixed.
   */
  readonly knownBreaks?: Readonly<Record<string, string>>;
}

/** Registers one test of a contract; `fn` gets an implementation opened for it alone. */
export type ContractTest<S> = (
  name: string,
  fn: (subject: S, t: TestContext) => Promise<void>,
) => void;

/** Registers the suite `title`, whose `body` declares its tests through `contractTest`. */
export const contractSuite = <S extends { readonly close: () => Promise<void> }>(
  title: string,
  open: () => Promise<S>,
  { knownBreaks = {} }: ContractOptions,
  body: (contractTest: ContractTest<S>) => void,
): void => {
  suite(title, () => {
    const unmatched = new Set(Object.keys(knownBreaks));
    body((name, fn) => {
      unmatched.delete(name);
      const todo = knownBreaks[name];
      test(name, todo === undefined ? {} : { todo }, async (t) => {
        const subject = await open();
        t.after(() => subject.close());
        await fn(subject, t);
      });
    });
    // A misspelt or renamed entry would otherwise excuse nothing and go unnoticed.
    if (unmatched.size > 0) {
      throw new Error(`${title}: known breaks name no test: ${[...unmatched].join('; ')}`);
    }
  });
};
