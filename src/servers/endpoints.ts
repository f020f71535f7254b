import type { Registry } from 'prom-client';
import { metricsRoute, type HttpRoute } from './http.ts';
import { readinessRoute, type ReadinessCheck } from './readiness.ts';

/**
 * How a service exposes `/metrics` and `/readyz`: from its own registry and checks, or —
 * run as one of several workers — the whole service's, every worker's together.
 */
export interface ServiceEndpoints {
  /** The `/metrics` route of a service whose metrics are in `registry`. */
  metrics(registry: Registry): HttpRoute;
  /** The `/readyz` route of a service with these checks. */
  readiness(checks: Readonly<Record<string, ReadinessCheck>>): HttpRoute;
}

/** A service in a process of its own: its metrics and checks are the whole service's. */
export const ownEndpoints: ServiceEndpoints = {
  metrics: metricsRoute,
  readiness: readinessRoute,
};
