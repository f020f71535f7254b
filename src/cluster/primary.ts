// A service's primary process: runs its workers (node:cluster; the primary accepts each
// connection on the shared ports and hands it to a worker in turn), restarts one that dies
// with a backoff, gathers their metrics and readiness for whichever worker answers a
// request, and on stop drains them all.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Logger } from '../logger.ts';
import { createWorkerMetrics, processMetrics } from '../metrics.ts';
import type { ReadinessReport } from '../servers/readiness.ts';
import {
  isWorkerMessage,
  type Gathered,
  type PrimaryMessage,
  type WorkerMessage,
  type WorkerMetrics,
} from './protocol.ts';
import { combineReadiness } from './readiness.ts';
import { createRestartPolicy, type RestartPolicyConfig } from './restartPolicy.ts';

/** Longest the primary waits for a worker's own metrics or readiness (checks take ≤ 1 s). */
const COLLECT_TIMEOUT_MS = 2_500;

/** Settings of {@link startPrimary}. */
export interface PrimaryOptions {
  /** How many workers run at once. */
  readonly workers: number;
  /** The settings worker `n` (1 …) replaces in the environment it inherits. */
  readonly environment: (n: number) => Record<string, string>;
  readonly logger: Logger;
  readonly restartPolicy?: RestartPolicyConfig;
}

/** A running primary. */
export interface Primary {
  /** Resolves once every worker has started for the first time; rejects if one could not. */
  readonly started: Promise<void>;
  /** Drains every worker (SIGTERM each, as one process is stopped) and waits for all. */
  stop(): Promise<void>;
  /** Resolves once every worker has exited: 0 after a clean stop of all, 1 otherwise. */
  readonly exited: Promise<number>;
}

interface Slot {
  readonly n: number;
  worker: Worker | undefined;
  started: boolean;
  forkedAt: number;
  restart: NodeJS.Timeout | undefined;
}

type Report = Extract<WorkerMessage, { type: 'spendstream:report' }>;

/**
 * Sends to a worker that may have exited meanwhile: without a callback, a send on a
 * closed channel is an 'error' event, which would end the primary.
 */
const send = (worker: Worker, message: PrimaryMessage) => {
  if (worker.isConnected()) worker.send(message, undefined, () => undefined);
};

/** Starts the workers of a service from this process, its primary. */
export const startPrimary = (options: PrimaryOptions): Primary => {
  const { logger } = options;
  const policy = createRestartPolicy(options.restartPolicy);
  // Structured clone: a NaN gauge (a store that did not answer) stays NaN, not null.
  cluster.setupPrimary({ serialization: 'advanced' });
  const slots: Slot[] = Array.from({ length: options.workers }, (_, i) => ({
    n: i + 1,
    worker: undefined,
    started: false,
    forkedAt: 0,
    restart: undefined,
  }));
  const live = () => slots.filter((slot) => slot.worker !== undefined);
  const metrics = createWorkerMetrics(undefined, () => live().length);
  const ownMetrics = Registry.merge([processMetrics(), metrics.registry]);
  const started = Promise.withResolvers<void>();
  const exited = Promise.withResolvers<number>();
  let announced = false;
  let othersForked = false;
  let stopping = false;
  let exitCode = 0;

  // Requests from the primary to the workers for their own figures, by id.
  const collecting = new Map<number, (report: Report) => void>();
  let nextId = 0;
  const collectOne = (worker: Worker, what: Gathered) =>
    new Promise<Report | undefined>((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        collecting.delete(id);
        resolve(undefined);
      }, COLLECT_TIMEOUT_MS);
      collecting.set(id, (report) => {
        clearTimeout(timer);
        resolve(report);
      });
      send(worker, { type: 'spendstream:collect', id, what });
    });
  // Workers starting, restarting or gone have nothing to say: they are left out.
  const collect = async (what: Gathered) =>
    (
      await Promise.all(
        live()
          .filter((slot) => slot.started && slot.worker?.isConnected() === true)
          .map((slot) => collectOne(slot.worker as Worker, what)),
      )
    ).filter((report) => report !== undefined);

  const gather = async (what: Gathered): Promise<PrimaryMessage> => {
    const reports = await collect(what);
    if (what === 'metrics') {
      const all: WorkerMetrics[] = [
        await ownMetrics.getMetricsAsJSON(),
        ...reports.flatMap((report) => (report.metrics === undefined ? [] : [report.metrics])),
      ];
      // Counters, histograms and most gauges summed; those marked otherwise as marked.
      const aggregated = AggregatorRegistry.aggregate(all);
      return {
        type: 'spendstream:gathered',
        id: -1,
        metrics: { text: await aggregated.metrics(), contentType: aggregated.contentType },
      };
    }
    const readiness = reports.flatMap((report): ReadinessReport[] =>
      report.readiness === undefined ? [] : [report.readiness],
    );
    return {
      type: 'spendstream:gathered',
      id: -1,
      readiness: combineReadiness(readiness, options.workers),
    };
  };

  const onMessage = (slot: Slot, worker: Worker, message: unknown) => {
    if (!isWorkerMessage(message)) return;
    switch (message.type) {
      case 'spendstream:started':
        slot.started = true;
        logger.info('worker started', { worker: slot.n, workerPid: worker.process.pid });
        if (!othersForked && !stopping) {
          othersForked = true;
          for (const other of slots.slice(1)) fork(other);
        }
        if (!announced && slots.every((each) => each.started)) {
          announced = true;
          logger.info('workers started', {
            workers: options.workers,
            workerPids: slots.map((each) => each.worker?.process.pid),
          });
          started.resolve();
        }
        return;
      case 'spendstream:gather':
        gather(message.what).then(
          (reply) => {
            send(worker, { ...reply, id: message.id });
          },
          (error: unknown) => logger.warn('could not gather the workers', { error }),
        );
        return;
      case 'spendstream:report':
        collecting.get(message.id)?.(message);
        collecting.delete(message.id);
    }
  };

  const finishIfDone = () => {
    if (stopping && live().length === 0 && slots.every((slot) => slot.restart === undefined)) {
      exited.resolve(exitCode);
    }
  };

  const fork = (slot: Slot) => {
    slot.restart = undefined;
    slot.started = false;
    slot.forkedAt = performance.now();
    const worker = cluster.fork(options.environment(slot.n));
    slot.worker = worker;
    worker.on('message', (message: unknown) => onMessage(slot, worker, message));
    worker.on('error', (error) => logger.debug('worker channel error', { worker: slot.n, error }));
    worker.once('exit', (code, signal) => onExit(slot, worker, code, signal));
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const fields = { worker: slot.n, workerPid: worker.process.pid, code, signal };
    if (stopping) {
      // A worker stopped in the middle of its own start ends by the signal itself.
      if (code !== 0 && !(code === null && signal === 'SIGTERM' && !slot.started)) {
        logger.error('worker did not stop cleanly', fields);
        exitCode = 1;
      }
      finishIfDone();
      return;
    }
    if (!announced) {
      // As one process does: a service that cannot start exits non-zero.
      logger.error('worker failed to start; stopping', fields);
      started.reject(new Error(`worker ${slot.n} exited with ${code ?? signal} while starting`));
      giveUp();
      return;
    }
    const decision = policy.died(slot.n, performance.now() - slot.forkedAt);
    if (!decision.restart) {
      logger.error('workers keep dying; stopping', { ...fields, deaths: decision.quickDeaths });
      giveUp();
      return;
    }
    metrics.restarts.inc();
    logger.warn('worker exited; restarting it', {
      ...fields,
      restartInMs: decision.delayMs,
      deaths: decision.quickDeaths,
    });
    // A slot's instance id is used again only now that its last process has exited: two
    // live processes never share one.
    slot.restart = setTimeout(() => fork(slot), decision.delayMs);
  };

  const stop = async () => {
    if (!stopping) {
      stopping = true;
      logger.info('stopping workers', { workers: live().length });
      for (const slot of slots) {
        clearTimeout(slot.restart);
        slot.restart = undefined;
        // Each drains as one process does: SIGTERM, not a cluster disconnect.
        slot.worker?.process.kill('SIGTERM');
      }
      finishIfDone();
    }
    await exited.promise;
  };
  const giveUp = () => {
    exitCode = 1;
    void stop();
  };

  started.promise.catch(() => undefined);
  // The first worker alone first: it applies the migrations, creates the topics and
  // prepares the totals, which the others, started together after it, then find done.
  fork(slots[0]);
  return { started: started.promise, stop, exited: exited.promise };
};
