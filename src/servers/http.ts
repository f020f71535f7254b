import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import type { Logger } from '../logger.ts';
import { processMetrics } from '../metrics.ts';

/** Answers one HTTP request. */
export type HttpRoute = (
  request: IncomingMessage,
  response: ServerResponse,
) => void | Promise<void>;

/** Routes by exact path (the query string is ignored). */
export type HttpRoutes = Readonly<Record<string, HttpRoute>>;

/** A running HTTP server of a service's own (the wallet's metrics and health port). */
export interface HttpServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Dispatches requests to `routes` by path; unknown paths get 404 and a route that
 * throws gets 500, never an unanswered request or a crashed process.
 */
export const routeRequests =
  (routes: HttpRoutes, logger: Logger) => (request: IncomingMessage, response: ServerResponse) => {
    // The path as sent, query string dropped. Never `new URL`: it throws on request lines
    // like `GET http://[ HTTP/1.1`, and a throw here would escape to the process.
    const target = request.url ?? '/';
    const query = target.indexOf('?');
    const path = query === -1 ? target : target.slice(0, query);
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    Promise.resolve()
      .then(() => route(request, response))
      .catch((error: unknown) => {
        logger.warn('http route failed', { path, error });
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
        response.end('internal error\n');
      });
  };

/** Serves a registry's metrics, and the process's, in the Prometheus text format. */
export const metricsRoute = (registry: Registry): HttpRoute => {
  const exposed = Registry.merge([processMetrics(), registry]);
  return async (_request, response) => {
    const body = await exposed.metrics();
    response.writeHead(200, { 'content-type': exposed.contentType }).end(body);
  };
};

/** Starts an HTTP server on `host:port` (0 picks a free port) serving `routes`. */
export const startHttpServer = async (
  config: { readonly host: string; readonly port: number },
  routes: HttpRoutes,
  logger: Logger,
): Promise<HttpServer> => {
  const server = createServer(routeRequests(routes, logger));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
