// A node:test reporter that prints nothing but, at the end of the run, every skipped test
// with its reason (for a missing outside tool, the command that installs it), so a run
// that passed with skips says so where it ends.
import type { TestEvent } from 'node:test/reporters';

/** Reports the skipped tests of a run, once, after the last event. */
export default async function* skippedReporter(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string> {
  const skipped: string[] = [];
  for await (const event of source) {
    // A skipped test passes, with `skip` set to its reason (or true).
    if (event.type !== 'test:pass' || event.data.skip === undefined) continue;
    const { name, skip, file } = event.data;
    const where = file === undefined ? '' : ` (${file.replace(`${process.cwd()}/`, '')})`;
    skipped.push(`  - ${name}${where}${typeof skip === 'string' ? `: ${skip}` : ''}`);
  }
  if (skipped.length > 0) {
    yield `\n${skipped.length} test(s) skipped, not passed:\n${skipped.join('\n')}\n`;
  }
}
