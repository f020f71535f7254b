import type { CheckState, ReadinessReport } from '../servers/readiness.ts';

const WORST: readonly CheckState[] = ['unavailable', 'partial', 'ok'];

const worse = (a: CheckState, b: CheckState): CheckState =>
  WORST.indexOf(a) <= WORST.indexOf(b) ? a : b;

/**
 * A service's readiness from the reports of the workers that answered, `expected` in
 * all: each check at its worst over them, plus `workers` — `ok` when every worker
 * answered, `partial` when only some did (the others are starting or being restarted, and
 * the rest serve meanwhile), `unavailable` when none did. Ready as one process is: when no
 * check is `unavailable`.
 */
export const combineReadiness = (
  reports: readonly ReadinessReport[],
  expected: number,
): ReadinessReport => {
  const checks: Record<string, CheckState> = {};
  for (const report of reports) {
    for (const [name, state] of Object.entries(report.checks)) {
      checks[name] = worse(checks[name] ?? 'ok', state);
    }
  }
  checks['workers'] =
    reports.length >= expected ? 'ok' : reports.length > 0 ? 'partial' : 'unavailable';
  const ready = Object.values(checks).every((state) => state !== 'unavailable');
  return { status: ready ? 'ok' : 'unavailable', checks };
};
