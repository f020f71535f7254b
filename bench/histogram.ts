import { build, type Histogram } from 'hdr-histogram-js';
import type { Percentiles } from './types.ts';

/**
 * An HDR histogram of latencies recorded in microseconds (1 µs to 10 min, 3 significant
 * digits), read back in milliseconds.
 */
export interface LatencyHistogram {
  record(milliseconds: number): void;
  percentiles(): Percentiles;
}

const round = (value: number, places: number) => Number(value.toFixed(places));

export const createLatencyHistogram = (): LatencyHistogram => {
  const histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  const ms = (micros: number) => round(micros / 1_000, 3);
  return {
    record(milliseconds) {
      histogram.recordValue(Math.min(600_000_000, Math.max(1, Math.round(milliseconds * 1_000))));
    },
    percentiles() {
      // A percentile is reported as its bucket's upper end, which can pass the exact max.
      const at = (percentile: number) =>
        ms(Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue));
      return {
        count: histogram.totalCount,
        p50: at(50),
        p90: at(90),
        p99: at(99),
        max: ms(histogram.maxValue),
      };
    },
  };
};
