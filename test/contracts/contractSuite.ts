// What every port's contract suite shares: each test opens the implementation afresh and
// closes it after.
import { suite, test, type TestContext } from 'node:test';

/** Registers one test of a contract; `fn` gets an implementation opened for it alone. */
export type ContractTest<S> = (
  name: string,
  fn: (subject: S, t: TestContext) => Promise<void>,
) => void;

/** Registers the suite `title`, whose `body` declares its tests through `contractTest`. */
export const contractSuite = <S extends { readonly close: () => Promise<void> }>(
  title: string,
  open: () => Promise<S>,
  body: (contractTest: ContractTest<S>) => void,
): void => {
  suite(title, () => {
    body((name, fn) => {
      test(name, async (t) => {
        const subject = await open();
        t.after(() => subject.close());
        await fn(subject, t);
      });
    });
  });
};
