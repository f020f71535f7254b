// The ingest's status page: three static files read once at start, the page's config,
// and a balance lookup through the wallet's gRPC server.
import { status as grpcStatus } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WalletClient } from '../adapters/grpc/walletClient.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { Logger } from '../logger.ts';
import type { HttpRoute, HttpRoutes } from './http.ts';

/** What the status page needs from the service. */
export interface StatusPageDeps {
  /** Reads balances (the wallet's gRPC client). */
  readonly wallet: Pick<WalletClient, 'getBalance'>;
  /** The WebSocket path the page sends purchases to (`WS_PATH`). */
  readonly wsPath: string;
  readonly logger: Logger;
  /** Longest a balance lookup waits for the wallet. */
  readonly balanceDeadlineMs?: number;
}

const ASSETS = {
  'index.html': 'text/html; charset=utf-8',
  'status.css': 'text/css; charset=utf-8',
  'status.js': 'text/javascript; charset=utf-8',
  'metricsText.js': 'text/javascript; charset=utf-8',
} as const;

// The page loads nothing from elsewhere; the policy keeps it that way. `'self'` covers
// ws:// to the same host and port.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const json = (
  response: ServerResponse,
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  response
    .writeHead(statusCode, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    })
    .end(JSON.stringify(body));
};

/** Answers 405 to anything but GET and HEAD; true when the request may go on. */
const readOnly = (request: IncomingMessage, response: ServerResponse) => {
  if (request.method === 'GET' || request.method === 'HEAD') return true;
  response
    .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
    .end('method not allowed\n');
  return false;
};

/**
 * Serves one file read at start. The names carry no version, so browsers revalidate
 * every time (`no-cache`) and an unchanged file costs a 304.
 */
const staticRoute = (body: Buffer, contentType: string): HttpRoute => {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const headers = {
    'content-type': contentType,
    'cache-control': 'no-cache',
    etag,
    ...(contentType.startsWith('text/html')
      ? PAGE_HEADERS
      : { 'x-content-type-options': 'nosniff' }),
  };
  return (request, response) => {
    if (!readOnly(request, response)) return;
    const match = request.headers['if-none-match']?.split(',').some((tag) => tag.trim() === etag);
    if (match === true) response.writeHead(304, headers).end();
    else response.writeHead(200, { ...headers, 'content-length': body.length }).end(body);
  };
};

const codeOf = (error: unknown): number | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number'
    ? error.code
    : undefined;

const detailsOf = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'details' in error
    ? String(error.details)
    : undefined;

/** The error a wallet failure becomes: HTTP status, stable code, message. */
const balanceError = (
  error: unknown,
): { statusCode: number; code: ErrorCode; message: string } | undefined => {
  switch (codeOf(error)) {
    case grpcStatus.INVALID_ARGUMENT:
      return {
        statusCode: 400,
        code: 'invalid_user_id',
        message: detailsOf(error) ?? 'invalid user_id',
      };
    case grpcStatus.UNAVAILABLE:
    case grpcStatus.DEADLINE_EXCEEDED:
      return {
        statusCode: 503,
        code: 'unavailable',
        message: 'the wallet did not answer; retry later',
      };
    default:
      return undefined;
  }
};

/** `GET /api/balance?user_id=…`: the user's total, from the wallet. */
const balanceRoute =
  (deps: StatusPageDeps): HttpRoute =>
  async (request, response) => {
    if (!readOnly(request, response)) return;
    // URLSearchParams never throws, whatever the request line held.
    const target = request.url ?? '';
    const query = target.indexOf('?');
    const userId = new URLSearchParams(query === -1 ? '' : target.slice(query + 1)).get('user_id');
    if (userId === null) {
      json(response, 400, { code: 'invalid_user_id', message: 'user_id is required' });
      return;
    }
    try {
      const { balances } = await deps.wallet.getBalance(userId, deps.balanceDeadlineMs ?? 2_000);
      json(response, 200, { user_id: userId, balances: { total: balances['total'] ?? 0 } });
    } catch (error) {
      const known = balanceError(error);
      if (known === undefined) {
        deps.logger.warn('balance lookup failed', { error });
        json(response, 502, { code: 'internal', message: 'the wallet failed to answer' });
        return;
      }
      json(
        response,
        known.statusCode,
        { code: known.code, message: known.message },
        known.statusCode === 503 ? { 'retry-after': '1' } : {},
      );
    }
  };

/**
 * Creates the status page's routes: the page at `/` and `/status`, its files under
 * `/status/`, `/api/config` and `/api/balance`. The files are read here, once; a missing
 * one fails the service's start rather than its first visitor.
 */
export const createStatusPageRoutes = (deps: StatusPageDeps): HttpRoutes => {
  const directory = new URL('./status/', import.meta.url);
  const routes: Record<string, HttpRoute> = {};
  for (const [name, contentType] of Object.entries(ASSETS)) {
    const route = staticRoute(readFileSync(new URL(name, directory)), contentType);
    if (name === 'index.html') {
      routes['/'] = route;
      routes['/status'] = route;
    } else routes[`/status/${name}`] = route;
  }
  const config = JSON.stringify({ ws_path: deps.wsPath });
  routes['/api/config'] = (request, response) => {
    if (!readOnly(request, response)) return;
    response
      .writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-cache',
      })
      .end(config);
  };
  routes['/api/balance'] = balanceRoute(deps);
  return routes;
};
