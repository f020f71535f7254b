// A worker's side of the IPC with its primary: it answers the primary's requests for its
// own metrics and readiness, and answers `/metrics` and `/readyz` with the whole
// service's, which the primary gathers from every worker.
import { Registry } from 'prom-client';
import { processMetrics } from '../metrics.ts';
import type { ServiceEndpoints } from '../servers/endpoints.ts';
import {
  checkReadiness,
  writeReadiness,
  type ReadinessCheck,
  type ReadinessReport,
} from '../servers/readiness.ts';
import {
  isPrimaryMessage,
  type Gathered,
  type PrimaryMessage,
  type WorkerMessage,
} from './protocol.ts';

/** Longest a request waits for the primary's gathering (which bounds its own). */
const GATHER_TIMEOUT_MS = 5_000;

/** A worker process's link to its primary. */
export interface WorkerLink extends ServiceEndpoints {
  /** Tells the primary the service has started. */
  started(): void;
}

type Gathering = Extract<PrimaryMessage, { type: 'spendstream:gathered' }>;

/** Links this process, a cluster worker, to its primary. */
export const linkToPrimary = (): WorkerLink => {
  const send = (message: WorkerMessage) => {
    // Gone only when the primary is, and then node ends this process.
    if (process.connected) process.send?.(message, undefined, undefined, () => undefined);
  };
  let registry: Registry | undefined;
  let checks: Readonly<Record<string, ReadinessCheck>> | undefined;
  const pending = new Map<number, (reply: Gathering) => void>();
  let nextId = 0;

  const answer = async (id: number, what: Gathered) => {
    if (what === 'metrics') {
      send({ type: 'spendstream:report', id, metrics: (await registry?.getMetricsAsJSON()) ?? [] });
    } else {
      const readiness = checks === undefined ? undefined : await checkReadiness(checks);
      send({ type: 'spendstream:report', id, ...(readiness === undefined ? {} : { readiness }) });
    }
  };
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    if (message.type === 'spendstream:collect') {
      answer(message.id, message.what).catch(() =>
        send({ type: 'spendstream:report', id: message.id }),
      );
    } else {
      pending.get(message.id)?.(message);
      pending.delete(message.id);
    }
  });

  const gather = (what: Gathered) =>
    new Promise<Gathering>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary did not gather the workers' ${what} in time`));
      }, GATHER_TIMEOUT_MS);
      pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      send({ type: 'spendstream:gather', id, what });
    });

  return {
    started: () => send({ type: 'spendstream:started' }),
    metrics: (own) => {
      registry = Registry.merge([processMetrics(), own]);
      return async (_request, response) => {
        const { metrics } = await gather('metrics');
        if (metrics === undefined) throw new Error('the primary gathered no metrics');
        response.writeHead(200, { 'content-type': metrics.contentType }).end(metrics.text);
      };
    },
    readiness: (own) => {
      checks = own;
      return async (_request, response) => {
        const { readiness } = await gather('readiness');
        const unavailable: ReadinessReport = { status: 'unavailable', checks: {} };
        writeReadiness(response, readiness ?? unavailable);
      };
    },
  };
};
