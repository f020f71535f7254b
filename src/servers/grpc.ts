import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Server,
  ServerCredentials,
  status,
  type Deadline,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { load, type MessageTypeDefinition, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { BalanceReader } from '../core/ports.ts';
import { isSpendstreamError, TotalsIncompleteError } from '../core/errors.ts';
import { createThrottledLog, type Logger } from '../logger.ts';
import { centsToDecimal, MAX_USER_ID_LENGTH, userIdProblem } from '../core/purchase.ts';
import { callMetricsInterceptor, type GrpcCallMetrics } from './grpcMetrics.ts';

/** Fully qualified name of the wallet service, as health checks and reflection know it. */
export const WALLET_SERVICE_NAME = 'trade_engine_wallet.WalletService';

/** Settings of the gRPC server. */
export interface GrpcServerConfig {
  readonly host: string;
  /** 0 asks the OS for a free port. */
  readonly port: number;
  /** Longest accepted `user_id`, in UTF-16 code units like the ingest's bound (128). */
  readonly maxUserIdLength?: number;
  /** Longest a balance read may take when the caller set no shorter deadline (5000). */
  readonly readTimeoutMs?: number;
  /** How long `close` lets open calls and health watches finish before cutting them (5000). */
  readonly shutdownGraceMs?: number;
}

/** What the gRPC server needs from the rest of the wallet service. */
export interface GrpcServerDeps {
  readonly reader: BalanceReader;
  /** Whether the service is healthy now: the health status until `setServing` changes it. */
  readonly isServing: () => boolean;
  /**
   * Whether the store holds the user's whole total (false while a rebuild replays the
   * topic, or a repair the user's bucket): until then GetBalance answers UNAVAILABLE
   * rather than a partial total. True unless given.
   */
  readonly totalsComplete?: (userId: string) => boolean;
  readonly logger: Logger;
  /** Counts every call by method and status, with its duration. */
  readonly metrics?: GrpcCallMetrics;
}

/** A running wallet gRPC server. */
export interface WalletGrpcServer {
  readonly port: number;
  /** Reports SERVING or NOT_SERVING to health checks, for the server and the wallet service. */
  setServing(serving: boolean): void;
  /** Stops accepting calls, lets open ones finish within the grace period, then closes. */
  close(): Promise<void>;
}

interface BalanceRequest {
  readonly user_id: string;
}

interface BalanceResponse {
  readonly balances: Record<string, number>;
}

const WALLET_PROTO = fileURLToPath(new URL('../../proto/wallet.proto', import.meta.url));
// The health proto is known by its path under the package's proto root, as upstream names it.
const HEALTH_PROTO_ROOT = resolve(dirname(healthProtoPath), '../..');

// setTimeout fires at once for delays past 2^31-1 ms; such deadlines are as good as none.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every call whose deadline passes is cancelled by its client with an RST_STREAM. Node's
 * HTTP/2 layer treats more than 1,000 of those in a burst (then 33/s) as a rapid-reset
 * attack and ends the whole connection with GOAWAY INTERNAL_ERROR, failing the valid calls
 * sharing it (grpc/grpc-node#2872). grpc-js passes no option through to
 * `http2.createServer`, so its server options are extended before the port is bound.
 * The limits stay finite: a flood far past what any deadline-bound client sends is still
 * cut off.
 */
const RESET_LIMITS = { streamResetBurst: 10_000, streamResetRate: 1_000 };
const allowDeadlineCancels = (server: Server) => {
  const internals = server as unknown as { commonServerOptions?: Record<string, unknown> };
  if (typeof internals.commonServerOptions !== 'object') {
    throw new Error('grpc-js no longer keeps commonServerOptions: revisit allowDeadlineCancels');
  }
  Object.assign(internals.commonServerOptions, RESET_LIMITS);
};

const invalidUserId = (userId: string, maxLength: number): string | undefined => {
  // A stricter limit of this server's own (tests) still counts characters.
  if (maxLength < MAX_USER_ID_LENGTH && [...userId].length > maxLength) {
    return `user_id must be at most ${maxLength} characters`;
  }
  const problem = userIdProblem(userId);
  return problem === undefined ? undefined : `user_id ${problem}`;
};

const deadlineMs = (deadline: Deadline): number =>
  deadline instanceof Date ? deadline.getTime() : deadline;

type Outcome =
  | { readonly kind: 'value'; readonly cents: number }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'deadline' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'cancelled' };

/**
 * Races the read against the call's deadline, the read timeout and cancellation, so a
 * Redis that hangs never holds a call past the moment its caller stopped waiting.
 */
const raceRead = (
  call: ServerUnaryCall<BalanceRequest, BalanceResponse>,
  read: () => Promise<number>,
  readTimeoutMs: number,
): Promise<Outcome> => {
  const untilDeadline = deadlineMs(call.getDeadline()) - Date.now();
  if (untilDeadline <= 0) return Promise.resolve({ kind: 'deadline' });
  return new Promise<Outcome>((settle) => {
    const byDeadline = untilDeadline <= readTimeoutMs;
    const wait = Math.min(untilDeadline, readTimeoutMs, MAX_TIMER_MS);
    const timer = setTimeout(() => finish({ kind: byDeadline ? 'deadline' : 'timeout' }), wait);
    const onCancelled = () => finish({ kind: 'cancelled' });
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      call.off('cancelled', onCancelled);
      settle(outcome);
    };
    call.once('cancelled', onCancelled);
    // Through a promise, so a reader that throws instead of rejecting is an error too.
    new Promise<number>((resolveRead) => resolveRead(read())).then(
      (cents) => finish({ kind: 'value', cents }),
      (error: unknown) => finish({ kind: 'error', error }),
    );
  });
};

interface FieldProto {
  name?: string;
  typeName?: string;
}
interface MessageProto {
  name?: string;
  field?: FieldProto[];
  nestedType?: MessageProto[];
  options?: { mapEntry?: boolean };
}
interface FileProto {
  package?: string;
  messageType?: MessageProto[];
}

/** protoc's name for the entry message of map field `name`: balances → BalancesEntry. */
const mapEntryName = (name: string): string =>
  `${name.replace(/(?:^|_)([a-z]?)/g, (_, first: string) => first.toUpperCase())}Entry`;

const fixMapEntries = (messages: MessageProto[] = [], scope: string): void => {
  for (const message of messages) {
    const path = `${scope}.${message.name ?? ''}`;
    for (const field of message.field ?? []) {
      const entry = message.nestedType?.find(
        (nested) =>
          nested.options?.mapEntry === true &&
          (field.typeName === nested.name || field.typeName === `${path}.${nested.name ?? ''}`),
      );
      if (entry === undefined || field.name === undefined) continue;
      entry.name = mapEntryName(field.name);
      field.typeName = `${path}.${entry.name}`;
    }
    fixMapEntries(message.nestedType, path);
  }
};

/**
 * The package definition with its file descriptors corrected for reflection: protobufjs
 * names a map's entry message after the field (`Balances`, not `BalancesEntry`), which Go
 * and C++ descriptor pools reject, so grpcurl could not describe or call GetBalance.
 */
const withValidMapEntries = async (definition: PackageDefinition): Promise<PackageDefinition> => {
  const codec = (await load('google/protobuf/descriptor.proto'))[
    'google.protobuf.FileDescriptorProto'
  ] as MessageTypeDefinition<FileProto, FileProto>;
  const fixed = new Map<Buffer, Buffer>();
  const fix = (bytes: Buffer): Buffer => {
    let done = fixed.get(bytes);
    if (done === undefined) {
      const file = codec.deserialize(bytes);
      fixMapEntries(file.messageType, file.package === undefined ? '' : `.${file.package}`);
      done = codec.serialize(file);
      fixed.set(bytes, done);
    }
    return done;
  };
  return Object.fromEntries(
    Object.entries(definition).map(([name, entry]) => [
      name,
      'fileDescriptorProtos' in entry && Array.isArray(entry.fileDescriptorProtos)
        ? { ...entry, fileDescriptorProtos: entry.fileDescriptorProtos.map(fix) }
        : entry,
    ]),
  ) as PackageDefinition;
};

const UNAVAILABLE_DETAILS = 'balances are temporarily unavailable; retry later';
const REBUILDING_DETAILS = 'balances are being rebuilt and are incomplete; retry later';

/**
 * Serves `trade_engine_wallet.WalletService` (proto/wallet.proto) on `host:port`, with
 * the standard health service (`grpc.health.v1.Health`) and server reflection, so tools
 * such as grpcurl work without the proto file. Plaintext, as the proof of concept was.
 */
export const startGrpcServer = async (
  config: GrpcServerConfig,
  deps: GrpcServerDeps,
): Promise<WalletGrpcServer> => {
  const maxUserIdLength = config.maxUserIdLength ?? MAX_USER_ID_LENGTH;
  const readTimeoutMs = config.readTimeoutMs ?? 5_000;
  const shutdownGraceMs = config.shutdownGraceMs ?? 5_000;
  const logger = deps.logger.child({ component: 'grpc' });
  const outage = createThrottledLog(logger, 'warn');

  const packageDefinition = await load([WALLET_PROTO, 'health/v1/health.proto'], {
    keepCase: true,
    longs: String,
    defaults: true,
    includeDirs: [HEALTH_PROTO_ROOT],
  });
  const walletService = packageDefinition[WALLET_SERVICE_NAME] as ServiceDefinition;

  const getBalance = (
    call: ServerUnaryCall<BalanceRequest, BalanceResponse>,
    callback: sendUnaryData<BalanceResponse>,
  ): void => {
    const userId = call.request.user_id;
    const invalid = invalidUserId(userId, maxUserIdLength);
    if (invalid !== undefined) {
      callback({ code: status.INVALID_ARGUMENT, details: invalid });
      return;
    }
    if (deps.totalsComplete?.(userId) === false) {
      callback({ code: status.UNAVAILABLE, details: REBUILDING_DETAILS });
      return;
    }
    void raceRead(call, () => deps.reader.totalCents(userId), readTimeoutMs).then((outcome) => {
      // A caller that went away gets nothing written; grpc-js would drop it anyway.
      if (call.cancelled || outcome.kind === 'cancelled') return;
      switch (outcome.kind) {
        case 'value':
          // Through the exact decimal text, so 4999 cents is the double nearest 49.99.
          callback(null, { balances: { total: Number(centsToDecimal(outcome.cents)) } });
          return;
        case 'deadline':
          callback({ code: status.DEADLINE_EXCEEDED, details: 'deadline exceeded' });
          return;
        case 'timeout':
          outage(`balance read took longer than ${readTimeoutMs} ms`);
          callback({ code: status.UNAVAILABLE, details: UNAVAILABLE_DETAILS });
          return;
        case 'error': {
          const { error } = outcome;
          // The user's bucket is being repaired: no outage, and the caller is told why.
          if (error instanceof TotalsIncompleteError) {
            callback({ code: status.UNAVAILABLE, details: REBUILDING_DETAILS });
            return;
          }
          if (isSpendstreamError(error) && error.retryable) {
            outage('balance store unavailable', { error });
            callback({ code: status.UNAVAILABLE, details: UNAVAILABLE_DETAILS });
            return;
          }
          logger.error('balance read failed', { error, userId });
          callback({ code: status.INTERNAL, details: 'internal error' });
        }
      }
    });
  };

  const initial = deps.isServing() ? 'SERVING' : 'NOT_SERVING';
  const health = new HealthImplementation({ '': initial, [WALLET_SERVICE_NAME]: initial });
  const setServing = (serving: boolean) => {
    const state = serving ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', state);
    health.setStatus(WALLET_SERVICE_NAME, state);
  };

  const server = new Server(
    deps.metrics === undefined ? {} : { interceptors: [callMetricsInterceptor(deps.metrics)] },
  );
  allowDeadlineCancels(server);
  server.addService(walletService, { GetBalance: getBalance });
  health.addToServer(server);
  new ReflectionService(await withValidMapEntries(packageDefinition)).addToServer(server);

  // An IPv6 literal needs brackets before the port.
  const host =
    config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  const port = await new Promise<number>((done, fail) => {
    server.bindAsync(
      `${host}:${config.port}`,
      ServerCredentials.createInsecure(),
      (error, bound) => (error === null ? done(bound) : fail(error)),
    );
  });
  logger.info('gRPC server listening', { host: config.host, port });

  return {
    port,
    setServing,
    async close() {
      // Health watchers learn first; their open Watch streams are what the grace cuts.
      setServing(false);
      await new Promise<void>((done) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          done();
        }, shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          done();
        });
      });
    },
  };
};
