// Where the limits are: sentences about each target not met, written from the figures
// alone (and from the store references, to say whether one store is the limit).
import type { BenchReport, StoreReference } from '../types.ts';
import {
  formatCount,
  formatErrors,
  formatMs,
  formatRate,
  formatRatio,
  isNumber,
  percentOf,
} from './format.ts';
import { mdText } from './markdown.ts';
import {
  TARGET_FRESHNESS_P99_MS,
  TARGET_GRPC_CALLS,
  TARGET_GRPC_P99_MS,
  TARGET_HALF_RATE,
  TARGET_HALF_RATE_P99_MS,
  TARGET_RATIO,
  TARGET_THROUGHPUT,
} from './targets.ts';

/** Sentences about the targets not met, built from the figures alone. */
export function limits(report: BenchReport): string {
  const { peak, halfRate, baseline, freshness, grpc, references } = report;
  const paragraphs: string[] = [];

  if (!(isNumber(peak.throughput) && peak.throughput >= TARGET_THROUGHPUT)) {
    const s = peak.settings;
    let text =
      `Peak throughput was ${formatRate(peak.throughput)} purchases/s, ` +
      `${percentOf(peak.throughput, TARGET_THROUGHPUT)} of the ` +
      `${formatRate(TARGET_THROUGHPUT)} purchases/s target (${formatCount(s.connections)} ` +
      `connections, window ${formatCount(s.window)}, frame size ${formatCount(s.frameSize)}; ` +
      `errors: ${formatErrors(peak.errors)}).`;
    if (references.length === 0) {
      text += ' No store references were measured in this run.';
    } else {
      const batched = references.filter((reference) => reference.mode === 'batched');
      const below = batched.filter((reference) => reference.perSecond < TARGET_THROUGHPUT);
      const list = (items: readonly StoreReference[]) =>
        items
          .map((reference) => `${mdText(reference.name)} ${formatRate(reference.perSecond)}/s`)
          .join(', ');
      text +=
        below.length === 0
          ? ` Used in batches, as spendstream uses them, each store alone takes more than ` +
            `${formatRate(TARGET_THROUGHPUT)}/s on this machine (${list(batched)}): no single ` +
            'store is the limit; the stores, the services and the load generator share the ' +
            'same CPUs.'
          : ` Used in batches, these stores alone take less than ` +
            `${formatRate(TARGET_THROUGHPUT)}/s on this machine: ${list(below)}.`;
    }
    paragraphs.push(text);
  }

  const rate = halfRate.settings.rate;
  const p99 = halfRate.latency.p99;
  if (!(isNumber(p99) && p99 < TARGET_HALF_RATE_P99_MS)) {
    paragraphs.push(
      `In the half-rate run the p99 ack latency was ${formatMs(p99)} ms, against the ` +
        `${TARGET_HALF_RATE_P99_MS} ms target (p50 ${formatMs(halfRate.latency.p50)} ms, ` +
        `p90 ${formatMs(halfRate.latency.p90)} ms, max ${formatMs(halfRate.latency.max)} ms; ` +
        `errors: ${formatErrors(halfRate.errors)}).`,
    );
  }
  if (!isNumber(rate)) {
    paragraphs.push(
      'The half-rate run had no fixed rate, so it does not test the latency target at ' +
        `${formatRate(TARGET_HALF_RATE)} purchases/s.`,
    );
  } else if (rate < TARGET_HALF_RATE) {
    paragraphs.push(
      `The half-rate run was paced at ${formatRate(rate)} purchases/s, below the ` +
        `${formatRate(TARGET_HALF_RATE)} purchases/s (half of ${formatRate(TARGET_THROUGHPUT)}) ` +
        'the latency target names, so that target is not counted as met.',
    );
  }

  if (!(isNumber(baseline.ratio) && baseline.ratio >= TARGET_RATIO)) {
    paragraphs.push(
      `With single-purchase frames spendstream acked ${formatRate(baseline.spendstream.throughput)} ` +
        `purchases/s and the per-message design ${formatRate(baseline.baseline.throughput)}: ` +
        `${formatRatio(baseline.ratio)}, short of ${TARGET_RATIO}x.`,
    );
  }

  const freshP99Met =
    isNumber(freshness.latency.p99) && freshness.latency.p99 < TARGET_FRESHNESS_P99_MS;
  if (!freshP99Met || freshness.timedOut > 0) {
    paragraphs.push(
      `Freshness p99 was ${formatMs(freshness.latency.p99)} ms against the ` +
        `${TARGET_FRESHNESS_P99_MS} ms target (p50 ${formatMs(freshness.latency.p50)} ms, ` +
        `max ${formatMs(freshness.latency.max)} ms); ${formatCount(freshness.timedOut)} of ` +
        `${formatCount(freshness.probes)} probes timed out` +
        (freshP99Met
          ? ', never showing within the timeout, so the target is not counted as met.'
          : '.'),
    );
  }

  const callsMet = isNumber(grpc.callsPerSecond) && grpc.callsPerSecond >= TARGET_GRPC_CALLS;
  const grpcP99Met = isNumber(grpc.latency.p99) && grpc.latency.p99 < TARGET_GRPC_P99_MS;
  if (!(callsMet && grpcP99Met)) {
    paragraphs.push(
      `GetBalance served ${formatRate(grpc.callsPerSecond)} calls/s ` +
        `(target >= ${formatRate(TARGET_GRPC_CALLS)}) with p99 ${formatMs(grpc.latency.p99)} ms ` +
        `(target < ${TARGET_GRPC_P99_MS} ms), from ${formatCount(grpc.callers)} callers against ` +
        `${formatCount(grpc.servers)} server process${grpc.servers === 1 ? '' : 'es'}; ` +
        `${formatCount(grpc.errors)} errors.`,
    );
  }

  if (paragraphs.length === 0) paragraphs.push('Every judged target was met in this run.');
  return paragraphs.join('\n\n');
}
