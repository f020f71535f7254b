// Types of metricsText.js, which the browser runs untyped.

/** One sample of a scrape. */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A scrape: samples by name. */
export type Samples = ReadonlyMap<string, readonly Sample[]>;

/** One cumulative histogram bucket: observations at most `le`. */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/** What the status page shows; undefined where the service exports no such figure. */
export interface Figures {
  readonly purchasesPerSecond: number | undefined;
  readonly received: number | undefined;
  readonly acked: number | undefined;
  readonly duplicates: number | undefined;
  readonly rejected: number | undefined;
  readonly rejectedByCode: Readonly<Record<string, number>>;
  /** Acks observed by the latency histogram over the interval. */
  readonly acksInInterval: number;
  /** Ack latency quantiles over the interval, in seconds (Infinity: past the last bound). */
  readonly p50: number | undefined;
  readonly p99: number | undefined;
  /** The largest finite latency bucket, in seconds. */
  readonly largestBound: number | undefined;
  readonly connections: number | undefined;
  readonly unacked: number | undefined;
}

/** The ingest metrics the page shows. */
export declare const METRIC: Readonly<{
  received: string;
  acked: string;
  rejected: string;
  ackLatency: string;
  connections: string;
  unacked: string;
}>;

/** Parses the Prometheus text exposition format into samples by name (declared: []). */
export declare const parseMetricsText: (text: string) => Map<string, Sample[]>;

/** The sum of the samples named `name` matching `match`; undefined if no such metric. */
export declare const sumOf: (
  samples: Samples,
  name: string,
  match?: Readonly<Record<string, string>>,
) => number | undefined;

/** The cumulative buckets of histogram `name`, summed over its other labels, by `le`. */
export declare const histogramBuckets: (samples: Samples, name: string) => Bucket[];

/** The observations between two scrapes of one histogram, bucket by bucket. */
export declare const bucketDeltas: (
  previous: readonly Bucket[],
  current: readonly Bucket[],
) => readonly Bucket[];

/** The `q` quantile of cumulative buckets, interpolated as histogram_quantile does. */
export declare const quantileFromBuckets: (
  q: number,
  buckets: readonly Bucket[],
) => number | undefined;

/** The page's figures from two scrapes `seconds` apart (`previous` undefined at first). */
export declare const summarize: (
  previous: Samples | undefined,
  current: Samples,
  seconds: number,
) => Figures;
