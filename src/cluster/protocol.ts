// The messages between a service's primary process and its workers (node:cluster IPC,
// `serialization: 'advanced'`, so NaN gauges and nested values arrive as they were sent).
import type { Registry } from 'prom-client';
import type { ReadinessReport } from '../servers/readiness.ts';

/** What the primary gathers from every worker. */
export type Gathered = 'metrics' | 'readiness';

/** A worker's metrics, as `Registry.getMetricsAsJSON()` gives them. */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Sent by a worker. */
export type WorkerMessage =
  /** Its service has started (its ports are bound). */
  | { readonly type: 'spendstream:started' }
  /** Asks for the whole service's metrics or readiness, for a request it is answering. */
  | { readonly type: 'spendstream:gather'; readonly id: number; readonly what: Gathered }
  /** Answers the primary's `collect` with its own. */
  | {
      readonly type: 'spendstream:report';
      readonly id: number;
      readonly metrics?: WorkerMetrics;
      readonly readiness?: ReadinessReport;
    };

/** Sent by the primary. */
export type PrimaryMessage =
  /** Asks a worker for its own metrics or readiness. */
  | { readonly type: 'spendstream:collect'; readonly id: number; readonly what: Gathered }
  /** Answers a worker's `gather`. */
  | {
      readonly type: 'spendstream:gathered';
      readonly id: number;
      readonly metrics?: { readonly text: string; readonly contentType: string };
      readonly readiness?: ReadinessReport;
    };

const isMessage = (message: unknown): message is { type: string } =>
  typeof message === 'object' &&
  message !== null &&
  typeof (message as { type?: unknown }).type === 'string' &&
  (message as { type: string }).type.startsWith('spendstream:');

/** Whether an IPC message is one of a worker's. */
export const isWorkerMessage = (message: unknown): message is WorkerMessage => isMessage(message);

/** Whether an IPC message is one of the primary's. */
export const isPrimaryMessage = (message: unknown): message is PrimaryMessage => isMessage(message);
