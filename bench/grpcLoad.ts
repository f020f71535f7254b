import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../test/harness/eventually.ts';
import { createLatencyHistogram } from './histogram.ts';
import type { GrpcResult } from './types.ts';

/** How {@link runGrpcLoad} calls GetBalance. */
export interface GrpcLoadOptions {
  readonly address: string;
  /** Concurrent callers: each has one call outstanding at a time. */
  readonly callers: number;
  /** HTTP/2 connections the callers are spread over. */
  readonly connections: number;
  /** gRPC server processes answering on the address (reported, not started here). */
  readonly servers: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** The user ids called, round robin. */
  readonly users: readonly string[];
}

const PATH = '/trade_engine_wallet.WalletService/GetBalance';

/** A length-prefixed gRPC message holding `BalanceRequest { user_id = 1 }`. */
export const encodeBalanceRequest = (userId: string): Buffer => {
  const id = Buffer.from(userId, 'utf8');
  // Field 1, wire type 2; user ids are short enough for a one-byte length.
  const message = Buffer.concat([Buffer.from([0x0a, id.length]), id]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
};

/**
 * The total of a length-prefixed `BalanceResponse { map<string, double> balances = 1 }`:
 * the double (field 2, wire type 1) of its map entry, or 0 when the map is empty.
 */
export const decodeBalanceTotal = (frame: Buffer): number => {
  const at = frame.indexOf(0x11, 5);
  return at < 0 || at + 9 > frame.length ? 0 : frame.readDoubleLE(at + 1);
};

/**
 * Closed-loop GetBalance load over plain HTTP/2, speaking gRPC's wire format itself so the
 * generator costs a fraction of a full gRPC client and the server is what gets measured:
 * `callers` concurrent callers over `connections` connections, each calling again as soon
 * as its answer arrives. A call counts when its trailers carry grpc-status 0; latencies of
 * calls started in the measured seconds go into an HDR histogram.
 */
export const runGrpcLoad = async (options: GrpcLoadOptions): Promise<GrpcResult> => {
  const histogram = createLatencyHistogram();
  const sessions: ClientHttp2Session[] = await Promise.all(
    Array.from(
      { length: options.connections },
      () =>
        new Promise<ClientHttp2Session>((resolve, reject) => {
          const session = connect(`http://${options.address}`);
          session.once('connect', () => resolve(session));
          session.once('error', reject);
        }),
    ),
  );
  const requests = options.users.map(encodeBalanceRequest);
  const startedAt = performance.now();
  const measureFrom = startedAt + options.warmupSeconds * 1_000;
  const measureTo = measureFrom + options.seconds * 1_000;
  let calls = 0;
  let errors = 0;
  let next = 0;
  let outstanding = 0;

  const callOnce = (caller: number) => {
    const session = sessions[caller % sessions.length];
    const request = requests[next % requests.length];
    next += 1;
    if (session === undefined || request === undefined) return;
    const at = performance.now();
    outstanding += 1;
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: PATH,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      te: 'trailers',
    });
    let status: string | undefined;
    stream.on('trailers', (trailers: Record<string, unknown>) => {
      const trailerStatus = trailers['grpc-status'];
      if (typeof trailerStatus === 'string') status = trailerStatus;
    });
    stream.on('response', (headers: Record<string, unknown>) => {
      // A trailers-only answer (an error) carries its status in the headers.
      const headerStatus = headers['grpc-status'];
      if (typeof headerStatus === 'string') status = headerStatus;
    });
    stream.on('data', () => undefined);
    const finish = () => {
      outstanding -= 1;
      const now = performance.now();
      if (at >= measureFrom && at < measureTo) {
        if (status === '0') {
          calls += 1;
          histogram.record(now - at);
        } else errors += 1;
      }
      if (now < measureTo) callOnce(caller);
    };
    stream.once('close', finish);
    stream.end(request);
  };
  for (let caller = 0; caller < options.callers; caller += 1) callOnce(caller);
  await sleep(measureTo - performance.now());
  await eventually('the calls due', () => outstanding === 0, {
    timeoutMs: 10_000,
    intervalMs: 10,
    onTimeout: 'resolve',
  });
  for (const session of sessions) session.close();
  return {
    callers: options.callers,
    servers: options.servers,
    seconds: options.seconds,
    callsPerSecond: Math.round(calls / options.seconds),
    errors,
    latency: histogram.percentiles(),
  };
};
