// How a fault scenario ends: its figures recorded for docs/reliability.md, printed, and
// the test failed unless the invariants hold.
import type { TestContext } from 'node:test';
import { assertInvariants, describeViolations, type InvariantReport } from './invariants.ts';
import { recordFigures } from './results.ts';

/**
 * Records a scenario's figures, prints them, and fails the test unless its invariants hold
 * (printing each violation first).
 */
export const reportScenario = (
  t: TestContext,
  name: string,
  report: InvariantReport,
  recoveryMs: number | undefined,
  extra: Readonly<Record<string, number | string>>,
): void => {
  recordFigures({
    scenario: name,
    sent: report.sent,
    acked: report.acked,
    refused: report.refused,
    lost: report.lost,
    doubleCounted: report.doubleCounted,
    ...(recoveryMs === undefined ? {} : { recoveryMs }),
    extra,
  });
  t.diagnostic(
    `${name}: sent ${report.sent}, acked ${report.acked}, refused ${report.refused}, ` +
      `lost ${report.lost}, doubleCounted ${report.doubleCounted}, ` +
      `recoveryMs ${recoveryMs ?? 'n/a'} ${JSON.stringify(extra)}`,
  );
  const violations = describeViolations(report);
  if (violations !== '') t.diagnostic(`violations:\n${violations}`);
  assertInvariants(report);
};
