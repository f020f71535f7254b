// The chart's axes: linear from zero, or logarithmic when latencies span more than a
// factor of 20, each with round tick values.

/** An axis: values to pixels, and where its ticks go. */
export interface Scale {
  readonly toPixel: (value: number) => number;
  readonly ticks: readonly number[];
  readonly log: boolean;
}

function niceStep(range: number, count: number): number {
  const raw = range / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * magnitude;
}

/** A linear axis from 0 to a round value at or above `max`, pixels `from` to `to`. */
export function linearScale(max: number, from: number, to: number): Scale {
  const safeMax = max > 0 ? max : 1;
  const step = niceStep(safeMax, 5);
  const top = Math.ceil(safeMax / step) * step;
  const ticks: number[] = [];
  for (let index = 0; index * step <= top + step / 1e6; index += 1) ticks.push(index * step);
  return { toPixel: (value) => from + (value / top) * (to - from), ticks, log: false };
}

/** A log axis over whole decades around `min`..`max`, ticks at 1, 2, 5 where they fit. */
export function logScale(min: number, max: number, from: number, to: number): Scale {
  const clean = (value: number) => Number(value.toPrecision(12));
  const low = 10 ** Math.floor(Math.log10(min));
  // The top is the first 1, 2 or 5 times a power of ten at or above the largest value.
  const topDecade = 10 ** Math.floor(Math.log10(max));
  const high = clean(([1, 2, 5, 10].find((step) => step * topDecade >= max) ?? 10) * topDecade);
  const span = Math.log10(high) - Math.log10(low);
  const steps = span <= 2.5 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let decade = low; decade <= high * (1 + 1e-9); decade = clean(decade * 10)) {
    for (const step of steps) {
      const tick = clean(step * decade);
      if (tick <= high * (1 + 1e-9)) ticks.push(tick);
    }
  }
  if (ticks.at(-1) !== high) ticks.push(high);
  return {
    toPixel: (value) => from + (Math.log10(value / low) / span) * (to - from),
    ticks,
    log: true,
  };
}
