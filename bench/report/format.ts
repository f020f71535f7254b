// How the report writes its figures: rates, milliseconds, counts and sizes, the same way
// in every table and sentence, and `n/a` for a figure that was not measured.

/** A figure that was measured: defined and finite. */
export const isNumber = (value: number | undefined): value is number =>
  value !== undefined && Number.isFinite(value);

function groupThousands(integer: number): string {
  const sign = integer < 0 ? '-' : '';
  return sign + String(Math.abs(integer)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Purchases or calls per second: thousands separators, no decimals, never rounded up. */
export function formatRate(value: number | undefined): string {
  return isNumber(value) ? groupThousands(Math.floor(value)) : 'n/a';
}

/** Milliseconds: one decimal below 10 ms, none from there on. */
export function formatMs(value: number | undefined): string {
  if (!isNumber(value)) return 'n/a';
  const tenths = Math.round(value * 10) / 10;
  return Math.abs(tenths) < 10 ? tenths.toFixed(1) : groupThousands(Math.round(value));
}

/** A ratio with one decimal, never rounded up: `12.3x`. */
export function formatRatio(value: number): string {
  return isNumber(value) ? `${(Math.floor(value * 10) / 10).toFixed(1)}x` : 'n/a';
}

/** A count: thousands separators, rounded. */
export function formatCount(value: number | undefined): string {
  return isNumber(value) ? groupThousands(Math.round(value)) : 'n/a';
}

/** A size in MiB, rounded. */
export function formatMiB(value: number | undefined): string {
  return isNumber(value) ? `${groupThousands(Math.round(value))} MiB` : 'n/a';
}

/** Short numbers for the chart: 950, 52.3k, 1.2M. */
export function formatCompact(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const units: readonly [number, string][] = [
    [1e6, 'M'],
    [1e3, 'k'],
    [1, ''],
  ];
  for (const [scale, suffix] of units) {
    if (Math.abs(value) < scale && scale !== 1) continue;
    const scaled = value / scale;
    const rounded =
      Math.abs(scaled) >= 100
        ? Math.round(scaled)
        : Math.abs(scaled) < 1
          ? Number(scaled.toPrecision(2))
          : Math.round(scaled * 10) / 10;
    // 999,960 rounds to 1000k: say 1M instead.
    if (Math.abs(rounded) >= 1000 && suffix !== 'M') {
      return formatCompact(Math.sign(value) * scale * 1000);
    }
    return `${String(rounded)}${suffix}`;
  }
  return String(value);
}

/** Error counts by code, codes in order: `overloaded 3, unavailable 1`. */
export function formatErrors(errors: Readonly<Record<string, number>>): string {
  const entries = Object.entries(errors)
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0
    ? 'none'
    : entries.map(([code, count]) => `${code} ${formatCount(count)}`).join(', ');
}

/** A duration the way a person says it: `2 h 5 min`, `3 min 20 s`. */
export function formatDuration(totalSeconds: number): string {
  if (!isNumber(totalSeconds)) return 'n/a';
  const seconds = Math.round(totalSeconds);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

/** A start time to the minute, in UTC. */
export function formatStartedAt(startedAt: string): string {
  const date = new Date(startedAt);
  if (Number.isNaN(date.getTime())) return startedAt;
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** `value` as a percentage of `target`, never rounded up. */
export function percentOf(value: number, target: number): string {
  return `${Math.floor((value / target) * 100)}%`;
}
