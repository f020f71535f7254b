// The baseline's ingest process: the Go proof of concept's per-message design, re-created
// in TypeScript as the benchmark's comparison point. Every text frame is handled on its
// own, as it arrives and concurrently with the others: one INSERT, one awaited Kafka send
// (idempotent producer, acks=all), one reply. Nothing is ever batched.
//
//   node bench/baseline/ingest.ts        (SIGTERM or SIGINT stops it)
import type { AddressInfo } from 'node:net';
import { Partitioners, type Producer } from 'kafkajs';
import { sql } from 'slonik';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { openMigratedDatabase } from '../../src/adapters/postgres/database.ts';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { sqlState } from '../../src/adapters/postgres/errors.ts';
import type { Config } from '../../src/config.ts';
import type { Logger } from '../../src/logger.ts';
import {
  centsToDecimal,
  MAX_AMOUNT_CENTS,
  numberToCents,
  uuidv7,
} from '../../src/core/purchase.ts';
import { runService } from '../../src/runService.ts';

/** How long a stop waits for the purchases already being handled. */
const DRAIN_TIMEOUT_MS = 10_000;

type Reply =
  | { readonly status: 'ack'; readonly id: string; readonly duplicate?: true }
  | {
      readonly status: 'error';
      readonly code: 'invalid_json' | 'invalid_purchase' | 'unsupported_frame' | 'unavailable';
      readonly id?: string;
      readonly message: string;
    };

interface ValidPurchase {
  readonly id: string;
  readonly userId: string;
  /** The JSON number the client sent; published as is, like the proof of concept. */
  readonly amount: number;
  readonly amountCents: number;
}

const invalid = (message: string): Reply => ({
  status: 'error',
  code: 'invalid_purchase',
  message,
});

/** Minimal validation of one decoded frame: a purchase, or the reply refusing it. */
const validate = (parsed: unknown): ValidPurchase | Reply => {
  if (Array.isArray(parsed)) return invalid('the baseline takes one purchase per frame');
  if (typeof parsed !== 'object' || parsed === null) {
    return invalid('a purchase must be a JSON object');
  }
  const record = parsed as Record<string, unknown>;
  const userId = record['user_id'];
  if (typeof userId !== 'string' || userId === '') {
    return invalid('user_id must be a non-empty string');
  }
  const amount = record['amount'];
  if (typeof amount !== 'number') return invalid('amount must be a JSON number');
  const amountCents = numberToCents(amount);
  if (amountCents === undefined || amountCents <= 0 || amountCents > MAX_AMOUNT_CENTS) {
    return invalid('amount must be a positive decimal with at most 2 places, at most 1000000.00');
  }
  const id = record['id'] ?? uuidv7();
  if (typeof id !== 'string' || id === '') return invalid('id must be a non-empty string');
  return { id, userId, amount, amountCents };
};

const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

const startBaselineIngest = async (config: Config, logger: Logger) => {
  const { topic } = config.kafka;
  const { pool } = await openMigratedDatabase(config.postgres);

  const kafka = createKafka({ ...config.kafka, logger });
  const admin = kafka.admin();
  await admin.connect();
  try {
    // Checked first: kafkajs logs an already-existing topic as an error response.
    if (!(await admin.listTopics()).includes(topic)) {
      await ensureTopic(admin, { topic, partitions: config.kafka.topicPartitions });
    }
  } finally {
    await admin.disconnect();
  }
  // The same durability as spendstream's producer: idempotent, every send acks=all.
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // Kafka's murmur2 partitioning of the key (user_id), as every Kafka client does.
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
  });
  await producer.connect();

  let draining = false;

  /** The per-message path: one INSERT, one awaited send, then the reply. */
  const handle = async (text: string): Promise<Reply> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { status: 'error', code: 'invalid_json', message: 'the frame is not valid JSON' };
    }
    const purchase = validate(parsed);
    if ('status' in purchase) return purchase;
    const { id, userId, amount, amountCents } = purchase;
    if (draining) {
      return { status: 'error', code: 'unavailable', id, message: 'the server is shutting down' };
    }
    try {
      await pool.query(
        sql.unsafe`
          INSERT INTO purchases (id, user_id, amount)
          VALUES (${id}, ${userId}, ${centsToDecimal(amountCents)})`,
      );
    } catch (error) {
      // 23505 unique_violation: this id is stored (and was published) already.
      if (sqlState(error) === '23505') return { status: 'ack', id, duplicate: true };
      return { status: 'error', code: 'unavailable', id, message: errorMessage(error) };
    }
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: [{ key: userId, value: JSON.stringify({ id, user_id: userId, amount }) }],
      });
    } catch (error) {
      return { status: 'error', code: 'unavailable', id, message: errorMessage(error) };
    }
    return { status: 'ack', id };
  };

  const inFlight = new Set<Promise<void>>();

  const onMessage = (socket: WebSocket, data: RawData, isBinary: boolean) => {
    const reply = (answer: Reply) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(answer));
    };
    if (isBinary) {
      reply({ status: 'error', code: 'unsupported_frame', message: 'send text frames' });
      return;
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.from(data).toString('utf8');
    const done = handle(text).then(reply, (error: unknown) =>
      reply({ status: 'error', code: 'unavailable', message: errorMessage(error) }),
    );
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };

  const wss = new WebSocketServer({
    host: config.ws.host,
    port: config.ws.port,
    path: config.ws.path,
    maxPayload: config.ingest.maxFrameBytes,
    perMessageDeflate: false,
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('error', (error) => logger.error('websocket server error', { error }));
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => onMessage(socket, data, isBinary));
    socket.on('error', (error) => logger.debug('socket error', { error }));
  });
  const { port } = wss.address() as AddressInfo;
  logger.info('baseline ingest listening', {
    url: `ws://${config.ws.host}:${port}${config.ws.path}`,
  });

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    draining = true;
    const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
    // Answer what is being handled, then close the connections.
    await Promise.race([
      Promise.allSettled([...inFlight]),
      new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref()),
    ]);
    for (const socket of wss.clients) socket.close(1001, 'server shutting down');
    const lingering = setTimeout(() => {
      for (const socket of wss.clients) socket.terminate();
    }, 2_000).unref();
    await closed;
    clearTimeout(lingering);
    await producer.disconnect();
    await pool.end();
    logger.info('baseline ingest stopped');
  };
  return { port, stop: () => (stopping ??= stop()) };
};

await runService('baseline-ingest', startBaselineIngest);
