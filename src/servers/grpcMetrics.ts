import {
  ServerInterceptingCall,
  status,
  type Deadline,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import type { WalletMetrics } from '../metrics.ts';

/** Where the gRPC server counts its calls. */
export type GrpcCallMetrics = Pick<WalletMetrics, 'grpcCalls' | 'grpcDuration'>;

const passed = (deadline: Deadline): boolean =>
  (deadline instanceof Date ? deadline.getTime() : deadline) <= Date.now();

/**
 * A server interceptor counting every call of every service the server hosts
 * (`WalletService`, health, reflection) by method (`package.Service/Method`) and status
 * name, with its duration: until the status is sent, or until the call was cancelled or
 * ran out of time, whichever comes first. A health `Watch` stream counts when it ends.
 */
export const callMetricsInterceptor =
  (metrics: GrpcCallMetrics): ServerInterceptor =>
  (descriptor, call) => {
    const method = descriptor.path.startsWith('/') ? descriptor.path.slice(1) : descriptor.path;
    const started = performance.now();
    let recorded = false;
    const record = (code: status) => {
      if (recorded) return;
      recorded = true;
      const labels = { method, status: status[code] ?? String(code) };
      metrics.grpcCalls.inc(labels);
      metrics.grpcDuration.observe(labels, (performance.now() - started) / 1_000);
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onCancel: () =>
            record(passed(call.getDeadline()) ? status.DEADLINE_EXCEEDED : status.CANCELLED),
        }),
      sendStatus: (sent, next) => {
        record(sent.code);
        next(sent);
      },
    });
  };
