// The figures one `npm run bench` produces. `bench/results/latest.json` holds exactly
// this shape; `docs/benchmarks.md` and its chart are rendered from it.
import type { ProfileSummary } from './profile.ts';

/** Latency percentiles in milliseconds, read from an HDR histogram. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** How a load run drove the server. */
export interface LoadSettings {
  /** WebSocket connections. */
  readonly connections: number;
  /** Purchases in flight (sent, not yet answered) per connection. */
  readonly window: number;
  /** Purchases per frame: 1 sends single-purchase frames, more sends array frames. */
  readonly frameSize: number;
  /** Distinct user ids the purchases are spread over. */
  readonly users: number;
  /** Measured seconds (after the warm-up). */
  readonly seconds: number;
  /** Purchases per second across all connections; absent when the window alone paces. */
  readonly rate?: number;
}

/** One run of the load generator against one server. */
export interface LoadResult {
  readonly settings: LoadSettings;
  /** Acks read per second during the measured seconds. */
  readonly throughput: number;
  /** Purchases sent during the measured seconds… */
  readonly sent: number;
  /** …of which this many were acked (the rest are in `errors`). */
  readonly acked: number;
  /** Error replies by code (`overloaded`, `unavailable`, …). */
  readonly errors: Readonly<Record<string, number>>;
  /** From sending a purchase to reading its ack. */
  readonly latency: Percentiles;
  /** The server process's peak resident set (VmHWM), MiB, when it was measured. */
  readonly peakRssMiB?: number;
}

/** Time from a purchase's ack until `GetBalance` shows it. */
export interface FreshnessResult {
  readonly probes: number;
  readonly latency: Percentiles;
  /** Probes whose total never showed within the timeout. */
  readonly timedOut: number;
}

/** Concurrent `GetBalance` callers. */
export interface GrpcResult {
  readonly callers: number;
  /** gRPC server processes sharing the port. */
  readonly servers: number;
  readonly seconds: number;
  readonly callsPerSecond: number;
  readonly errors: number;
  readonly latency: Percentiles;
}

/** One point of a sweep: the setting varied and what the load run measured. */
export interface SweepPoint {
  readonly label: string;
  readonly batchMaxSize?: number;
  readonly batchMaxWaitMs?: number;
  readonly result: LoadResult;
}

/** A reference measurement of one store on this machine, without spendstream around it. */
export interface StoreReference {
  readonly name: string;
  /** Batched, as spendstream uses the store, or one operation per purchase, as the baseline. */
  readonly mode: 'batched' | 'single';
  readonly description: string;
  readonly perSecond: number;
}

/** One wallet rebuilding its totals after its Redis keys were wiped. */
export interface RebuildRun {
  /** The full history, a fifth of it, or the full history over a tenth of the users. */
  readonly scenario: 'full-history' | 'short-history' | 'few-users';
  /** From offset 0 (snapshots off), or the snapshot in PostgreSQL plus the tail after it. */
  readonly design: 'replay' | 'snapshot';
  readonly users: number;
  /** Records in the topic. */
  readonly records: number;
  /** Records the rebuild had to read: from where it started up to the topic's end. */
  readonly replayedRecords: number;
  /** Users whose totals came from the snapshot. */
  readonly snapshotUsers: number;
  /** Of the start, restoring the snapshot (and deleting what Redis held), ms. */
  readonly restoreMs: number;
  /** From the process's start until gRPC health said SERVING. */
  readonly seconds: number;
  /** Users whose `GetBalance` was checked against the sum of their purchases: all of them. */
  readonly usersChecked: number;
}

/** Rebuild time after a Redis wipe, today's replay against the snapshot design. */
export interface RebuildReport {
  readonly partitions: number;
  /** Records written after the snapshot was taken, before each rebuild. */
  readonly tail: number;
  /** How fast the history was written to the topic, records per second. */
  readonly writtenPerSecond: number;
  readonly runs: readonly RebuildRun[];
  /** Each a ratio of rebuild times (seconds over seconds). */
  readonly ratios: {
    readonly replayOverSnapshot: number;
    readonly replayOverSnapshotShortHistory: number;
    /** Replay grows with history… */
    readonly replayFullOverShortHistory: number;
    /** …the snapshot design does not… */
    readonly snapshotFullOverShortHistory: number;
    /** …it grows with users. */
    readonly snapshotManyOverFewUsers: number;
  };
}

/** A Kafka outage under load, and how the backlog it left drained once Kafka was back. */
export interface OutageReport {
  /** The offered load, purchases per second (about what the system sustained). */
  readonly rate: number;
  readonly users: number;
  /** How long the broker was down: from stopped until it served again. */
  readonly outageSeconds: number;
  /** Outbox settings the ingest ran with. */
  readonly outbox: { readonly minAgeMs: number; readonly recoveryIntervalMs: number };
  /** Purchases stored from the broker stopped until it served again (rows of `purchases`). */
  readonly storedDuringOutage: number;
  /** When the broker was back: outbox entries and the purchases they hold. */
  readonly backlog: { readonly entries: number; readonly purchases: number };
  /** From the broker back until no entry older than that moment remained (load going on). */
  readonly backlogDrainedSeconds: number;
  /** Backlog purchases over backlogDrainedSeconds. */
  readonly drainPerSecond: number;
  /** From the broker back until the outbox was empty (the load stopped once it drained). */
  readonly outboxEmptySeconds: number;
  /** From the broker back until the outbox was empty and every total equalled its sum. */
  readonly consistentSeconds: number;
  /** The load's replies over the whole run, by status (`ack`, `unavailable`, …). */
  readonly replies: Readonly<Record<string, number>>;
  /** Users whose total was checked against PostgreSQL. */
  readonly usersChecked: number;
}

/** The whole report. */
export interface BenchReport {
  readonly startedAt: string;
  readonly durationSeconds: number;
  /** The exact command that produced it. */
  readonly command: string;
  readonly smoke: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly node: string;
    readonly os: string;
    readonly postgres?: string;
    readonly redis?: string;
    readonly kafka?: string;
  };
  /** The headline: maximum sustained throughput with durable acks (window-paced). */
  readonly peak: LoadResult;
  /** A fixed rate at half the peak, for the latency target. */
  readonly halfRate: LoadResult;
  /** The per-message design and spendstream under the same single-purchase-frame load. */
  readonly baseline: {
    readonly baseline: LoadResult;
    readonly spendstream: LoadResult;
    readonly ratio: number;
  };
  /**
   * The ingest path alone, the wallet stopped: what ingest does when it has the machine's
   * CPU to itself (the wallet catches up afterwards).
   */
  readonly ingestOnly?: LoadResult;
  /** With `--profile`: where the ingest and wallet processes spent their CPU time. */
  readonly profiles?: readonly (ProfileSummary & { readonly service: string })[];
  /** Offered loads past the admission limit, to show memory stays bounded. */
  readonly overload: readonly SweepPoint[];
  readonly freshness: FreshnessResult;
  readonly grpc: GrpcResult;
  readonly sweeps: {
    readonly batch: readonly SweepPoint[];
    readonly connections: readonly SweepPoint[];
  };
  readonly references: readonly StoreReference[];
  /** Absent in reports from before it was measured. */
  readonly rebuild?: RebuildReport;
  /** Absent in reports from before it was measured. */
  readonly outage?: OutageReport;
}

/** The `load` section's figures: the load runs, the baseline and the store references. */
export type LoadFigures = Pick<
  BenchReport,
  | 'peak'
  | 'halfRate'
  | 'baseline'
  | 'ingestOnly'
  | 'profiles'
  | 'overload'
  | 'freshness'
  | 'grpc'
  | 'sweeps'
  | 'references'
>;

/** What a run writes: the whole report, or with `--only` the header and those sections. */
export type SectionsReport = Omit<BenchReport, keyof LoadFigures> & Partial<LoadFigures>;
