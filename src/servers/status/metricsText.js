// The Prometheus text format and the status page's figures, as plain ES so the browser
// runs it as it is and the unit tests import the same file. Types: metricsText.d.ts.

/** The ingest metrics the page shows (names fixed in src/metrics.ts). */
export const METRIC = Object.freeze({
  received: 'spendstream_purchases_received_total',
  acked: 'spendstream_purchases_acked_total',
  rejected: 'spendstream_purchases_rejected_total',
  ackLatency: 'spendstream_ack_latency_seconds',
  connections: 'spendstream_connections_open',
  unacked: 'spendstream_purchases_unacked',
});

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** A sample value as the format writes it: a float, `+Inf`, `-Inf` or `NaN`. */
const parseValue = (text) => {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${text}`);
  return value;
};

/** Reads `{a="1",b="x\"y"}` from `line` at `start`; returns the labels and the index after `}`. */
const parseLabels = (line, start) => {
  const labels = {};
  let i = start + 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i += 1;
    if (line[i] === '}') return { labels, end: i + 1 };
    const name = LABEL_NAME.exec(line.slice(i))?.[0];
    if (name === undefined) throw new Error('bad label name');
    i += name.length;
    while (line[i] === ' ') i += 1;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error('bad label');
    i += 2;
    let value = '';
    // Label values escape only backslash, double quote and line feed.
    while (line[i] !== '"') {
      if (i >= line.length) throw new Error('unterminated label value');
      if (line[i] === '\\') {
        const next = line[i + 1];
        value += next === 'n' ? '\n' : next;
        i += 2;
      } else {
        value += line[i];
        i += 1;
      }
    }
    labels[name] = value;
    i += 1;
  }
};

/**
 * Parses the Prometheus text exposition format into samples by name (`_bucket`, `_sum`
 * and `_count` series keep their own names). Comments are skipped, as is any line that
 * is not a sample, so one odd line never blanks the whole page.
 */
export const parseMetricsText = (text) => {
  const samples = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // A declared family without samples yet (a labelled counter never incremented) is
    // known, so it reads as zero rather than as missing.
    const declared = /^#\s*TYPE\s+(\S+)\s+(counter|gauge|untyped)\b/.exec(line)?.[1];
    if (declared !== undefined && !samples.has(declared)) samples.set(declared, []);
    if (line === '' || line.startsWith('#')) continue;
    try {
      const name = NAME.exec(line)?.[0];
      if (name === undefined) continue;
      let rest = name.length;
      let labels = {};
      if (line[rest] === '{') ({ labels, end: rest } = parseLabels(line, rest));
      // A timestamp may follow the value; the page uses its own clock.
      const value = parseValue(line.slice(rest).trim().split(/\s+/)[0] ?? '');
      const list = samples.get(name) ?? [];
      list.push({ labels, value });
      samples.set(name, list);
    } catch {
      continue;
    }
  }
  return samples;
};

const matches = (labels, match) =>
  Object.entries(match).every(([name, value]) => labels[name] === value);

/**
 * The sum of the samples named `name` whose labels include `match`: 0 when none match,
 * undefined when the scrape has no such metric at all.
 */
export const sumOf = (samples, name, match = {}) => {
  const found = samples.get(name);
  if (found === undefined) return undefined;
  return found
    .filter((sample) => matches(sample.labels, match))
    .reduce((sum, sample) => sum + sample.value, 0);
};

/** The cumulative buckets of histogram `name`, summed over its other labels, by `le`. */
export const histogramBuckets = (samples, name) => {
  const byBound = new Map();
  for (const { labels, value } of samples.get(`${name}_bucket`) ?? []) {
    if (labels.le === undefined) continue;
    const le = parseValue(labels.le);
    byBound.set(le, (byBound.get(le) ?? 0) + value);
  }
  return [...byBound].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
};

/**
 * The observations between two scrapes of one histogram, bucket by bucket. A count that
 * went down means the service restarted: everything since is the current scrape.
 */
export const bucketDeltas = (previous, current) => {
  const before = new Map(previous.map((bucket) => [bucket.le, bucket.count]));
  const deltas = current.map(({ le, count }) => ({ le, count: count - (before.get(le) ?? 0) }));
  return deltas.some((bucket) => bucket.count < 0) ? current : deltas;
};

/**
 * The `q` quantile (0 < q < 1) of cumulative buckets, interpolated linearly inside its
 * bucket as Prometheus's histogram_quantile does. Undefined when the buckets hold no
 * observation; Infinity when the quantile lies above the largest finite bound.
 */
export const quantileFromBuckets = (q, buckets) => {
  const total = buckets.at(-1)?.count ?? 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  const index = buckets.findIndex((bucket) => bucket.count >= rank);
  const bucket = buckets[index];
  if (bucket.le === Infinity) return Infinity;
  const lower = index === 0 ? 0 : buckets[index - 1].le;
  const below = index === 0 ? 0 : buckets[index - 1].count;
  const inside = bucket.count - below;
  return inside > 0 ? lower + ((bucket.le - lower) * (rank - below)) / inside : bucket.le;
};

/** How much a counter grew between scrapes; a counter that went down restarted from 0. */
const growth = (before, after) =>
  after === undefined ? undefined : after - (before ?? 0) < 0 ? after : after - (before ?? 0);

/**
 * What the status page shows, from two scrapes `seconds` apart (`previous` is undefined
 * for the first). Rates and latencies cover that interval only; a figure the service
 * does not export (yet) is undefined.
 */
export const summarize = (previous, current, seconds) => {
  const received = sumOf(current, METRIC.received);
  const receivedBefore = previous && sumOf(previous, METRIC.received);
  const grew = previous === undefined ? undefined : growth(receivedBefore, received);
  const buckets = histogramBuckets(current, METRIC.ackLatency);
  const interval =
    previous === undefined
      ? []
      : bucketDeltas(histogramBuckets(previous, METRIC.ackLatency), buckets);
  const rejectedByCode = {};
  for (const { labels, value } of current.get(METRIC.rejected) ?? []) {
    const code = labels.code ?? 'unknown';
    rejectedByCode[code] = (rejectedByCode[code] ?? 0) + value;
  }
  return {
    purchasesPerSecond: grew === undefined || !(seconds > 0) ? undefined : grew / seconds,
    received,
    acked: sumOf(current, METRIC.acked),
    duplicates: sumOf(current, METRIC.acked, { duplicate: 'true' }),
    rejected: sumOf(current, METRIC.rejected),
    rejectedByCode,
    acksInInterval: interval.at(-1)?.count ?? 0,
    p50: quantileFromBuckets(0.5, interval),
    p99: quantileFromBuckets(0.99, interval),
    largestBound: buckets.filter((bucket) => bucket.le !== Infinity).at(-1)?.le,
    connections: sumOf(current, METRIC.connections),
    unacked: sumOf(current, METRIC.unacked),
  };
};
