// The reliability suite's services run as child processes, so a crash shows as an exit and
// their resident set can be read; a probe client stands for the well-behaved users whose
// service must not suffer from the abuse.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { centsToDecimal } from '../../src/core/purchase.ts';
import {
  freePort,
  startIngestProcess,
  startWalletProcess,
  type ServiceProcess,
} from '../harness/processes.ts';
import { createTestDatabase, testConfig, uniqueName } from '../helpers.ts';
import { deleteGroups, deleteTopics } from '../kafkaHelpers.ts';
import { connectClient, type Reply, type TestClient } from '../wsClient.ts';

/** A service process of a test's own, with what the test needs around it. */
export interface ChildService {
  readonly process: ServiceProcess;
  /** The port the service listens on (WebSocket or gRPC). */
  readonly port: number;
  readonly topic: string;
  readonly kafka: Kafka;
  alive(): boolean;
  /** Peak RSS since start or the last reset, MiB; fails the test if it cannot be read. */
  peakRssMiB(): number;
  /** Stops the process and removes what was created for it. */
  close(): Promise<void>;
}

/** An ingest service child process on its own database, topic and port. */
export interface IngestChild extends ChildService {
  readonly url: string;
  /** A pool on the service's database, for checking what it stored. */
  readonly pool: DatabasePool;
}

const peakOf = (service: ServiceProcess) => () => {
  const peak = service.peakRssMiB();
  if (peak === undefined) throw new Error(`cannot read the peak RSS of ${service.name}`);
  return peak;
};

/**
 * Starts `node src/ingest.ts` on a new database and topic and a free port, with settings
 * replaced by `overrides`; resolves once it logs that it listens.
 */
export const startIngestChild = async (
  overrides: Record<string, string> = {},
): Promise<IngestChild> => {
  const database = await createTestDatabase();
  const topic = uniqueName('hostile_purchases');
  const kafka = createKafka(testConfig.kafka);
  const cleanup = async () => {
    await deleteTopics(kafka, [topic]);
    await database.drop();
  };
  let service: ServiceProcess;
  let port: number;
  try {
    port = await freePort();
    service = await startIngestProcess({
      DATABASE_URL: database.url,
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: '3',
      KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
      REDIS_KEY_PREFIX: `${topic}:`,
      WALLET_GROUP_ID: `${topic}_wallet`,
      WS_HOST: '127.0.0.1',
      WS_PORT: String(port),
      LOG_LEVEL: 'info',
      ...overrides,
    });
  } catch (error) {
    await cleanup();
    throw error;
  }
  const pool = await createPostgresPool({ url: database.url, poolSize: 2 });
  return {
    process: service,
    port,
    topic,
    kafka,
    url: `ws://127.0.0.1:${port}/ws`,
    pool,
    alive: () => service.running,
    peakRssMiB: peakOf(service),
    close: async () => {
      await service.stop();
      await pool.end();
      await cleanup();
    },
  };
};

/** Starts `node src/wallet.ts` on a new topic, consumer group and Redis key prefix. */
export const startWalletChild = async (
  redisPrefix: string,
): Promise<ChildService & { readonly address: string }> => {
  const topic = uniqueName('hostile_wallet');
  const kafka = createKafka(testConfig.kafka);
  const cleanup = () => deleteTopics(kafka, [topic, `${topic}_dead`]);
  let service: ServiceProcess;
  let port: number;
  try {
    port = await freePort();
    service = await startWalletProcess({
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: '3',
      KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
      REDIS_KEY_PREFIX: redisPrefix,
      WALLET_GROUP_ID: `${topic}_wallet`,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(port),
      WALLET_HTTP_PORT: '0',
      LOG_LEVEL: 'info',
    });
  } catch (error) {
    await cleanup();
    throw error;
  }
  return {
    process: service,
    port,
    topic,
    kafka,
    address: `127.0.0.1:${port}`,
    alive: () => service.running,
    peakRssMiB: peakOf(service),
    close: async () => {
      await service.stop();
      await deleteGroups(kafka, [`${topic}_wallet`]);
      await cleanup();
    },
  };
};

/** A purchase a well-behaved client sent, and what it meant. */
export interface SentPurchase {
  readonly id: string;
  readonly userId: string;
  readonly cents: number;
}

/** What a probe saw. */
export interface ProbeReport {
  readonly sent: number;
  /** Purchases acked, with their contents. */
  readonly acked: readonly SentPurchase[];
  /** Purchases refused with an accepted error code, by code. */
  readonly refused: Readonly<Record<string, number>>;
  /** Longest wait for a reply, ms (reported, never asserted: the machine is noisy). */
  readonly maxReplyMs: number;
  /** What went wrong: a reply not accepted, no reply in time, the connection lost. */
  readonly failures: readonly string[];
}

/** A well-behaved client running in the background until stopped. */
export interface Probe {
  /** Stops sending, waits for the reply in hand, closes the connection. */
  stop(): Promise<ProbeReport>;
}

/**
 * Starts a well-behaved client: one purchase at a time, each with an id, waiting up to
 * `replyTimeoutMs` for its reply before sending the next. A reply that is neither an ack
 * nor an error whose code is in `refusable` is a failure, as is a missing reply.
 */
export const startProbe = async (
  url: string,
  options: {
    readonly prefix: string;
    readonly refusable?: readonly string[];
    readonly replyTimeoutMs?: number;
    readonly pauseMs?: number;
  },
): Promise<Probe> => {
  const refusable = new Set(options.refusable ?? []);
  const replyTimeoutMs = options.replyTimeoutMs ?? 10_000;
  const client: TestClient = await connectClient(url);
  const acked: SentPurchase[] = [];
  const refused: Record<string, number> = {};
  const failures: string[] = [];
  let sent = 0;
  let maxReplyMs = 0;
  let stopping = false;
  const loop = (async () => {
    while (!stopping && failures.length === 0) {
      const purchase: SentPurchase = {
        id: `${options.prefix}-${sent}`,
        userId: `${options.prefix}-user-${sent % 7}`,
        cents: 1 + ((sent * 7_919) % 99_999),
      };
      const startedAt = performance.now();
      client.send({
        id: purchase.id,
        user_id: purchase.userId,
        amount: centsToDecimal(purchase.cents),
      });
      sent += 1;
      let reply: Reply;
      try {
        reply = await client.next(replyTimeoutMs);
      } catch {
        failures.push(`no reply to ${purchase.id} within ${replyTimeoutMs} ms`);
        break;
      }
      maxReplyMs = Math.max(maxReplyMs, performance.now() - startedAt);
      if (reply.status === 'ack' && reply.id === purchase.id && reply.duplicate === false) {
        acked.push(purchase);
      } else if (
        reply.status === 'error' &&
        reply.id === purchase.id &&
        refusable.has(String(reply.code))
      ) {
        refused[String(reply.code)] = (refused[String(reply.code)] ?? 0) + 1;
      } else {
        failures.push(`${purchase.id} answered ${JSON.stringify(reply)}`);
      }
      await sleep(options.pauseMs ?? 20);
    }
  })();
  void client.closed.then((code) => {
    if (!stopping) failures.push(`the probe's connection closed with ${code}`);
  });
  return {
    stop: async () => {
      stopping = true;
      await loop;
      await client.close();
      return { sent, acked, refused, maxReplyMs: Math.round(maxReplyMs), failures };
    },
  };
};

const storedRow = z.object({ id: z.string(), user_id: z.string(), amount: z.string() });
/** A row of `purchases`, its amount as PostgreSQL's exact decimal text. */
export type StoredRow = z.infer<typeof storedRow>;

/** Every row of the database's `purchases` table. */
export const allPurchases = async (pool: DatabasePool): Promise<readonly StoredRow[]> =>
  pool.any(sql.type(storedRow)`SELECT id, user_id, amount::text AS amount FROM purchases`);

/** How many of `ids` are stored. */
export const countStored = async (pool: DatabasePool, ids: readonly string[]): Promise<number> =>
  pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM purchases WHERE id = ANY(${sql.array([...ids], 'text')})`,
  );

/** How many purchases of users whose id starts with `prefix` are stored. */
export const countStoredForUsers = async (pool: DatabasePool, prefix: string): Promise<number> =>
  pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM purchases WHERE starts_with(user_id, ${prefix})`,
  );

// The documented rules (docs/protocol.md, "Purchase fields"), written out independently of
// the service's schema: what every stored row must satisfy whatever the input was.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The documented rule for a client's id. */
export const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** A server-assigned id: a UUIDv7. */
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const STORED_AMOUNT = /^(\d+)\.(\d{2})$/;

/** Integer cents of a stored amount (`"49.99"` → 4999), without a float. */
export const storedCents = (amount: string): number => {
  const match = STORED_AMOUNT.exec(amount);
  if (match === null) return Number.NaN;
  return Number(BigInt(match[1] ?? '') * 100n + BigInt(match[2] ?? ''));
};

/** Why a stored row breaks the documented rules, or undefined when it keeps them. */
export const ruleBroken = (row: StoredRow): string | undefined => {
  const cents = storedCents(row.amount);
  if (!STORED_AMOUNT.test(row.amount)) return `amount ${row.amount} is not a 2-place decimal`;
  if (!(cents > 0)) return `amount ${row.amount} is not greater than 0`;
  if (cents > 100_000_000) return `amount ${row.amount} is over 1000000.00`;
  if (row.user_id.length === 0) return 'user_id is empty';
  const characters = [...row.user_id].length;
  if (characters > 128) return `user_id has ${characters} characters`;
  if (CONTROL.test(row.user_id))
    return `user_id ${JSON.stringify(row.user_id)} has a control character`;
  if (!CLIENT_ID.test(row.id) && !UUID_V7.test(row.id)) return `id ${JSON.stringify(row.id)}`;
  return undefined;
};

/** `promise`'s value, or `fallback` once `ms` have passed (the timer does not linger). */
export const within = <T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};
