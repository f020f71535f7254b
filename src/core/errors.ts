/**
 * Every stable error code spendstream reports, to clients and in logs.
 * Codes are part of the public contract: add new ones, never rename or reuse one.
 */
export const ERROR_CODES = [
  'invalid_json',
  'invalid_purchase',
  'invalid_user_id',
  'too_large',
  'unsupported_frame',
  'id_conflict',
  'overloaded',
  'unavailable',
  'invalid_config',
  'internal',
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Options shared by every spendstream error. */
export interface SpendstreamErrorOptions {
  readonly cause?: unknown;
  /** Whether the same operation may succeed when tried again later. */
  readonly retryable?: boolean;
}

/** Base class of every error spendstream raises on purpose. */
export class SpendstreamError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: SpendstreamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** A setting in the environment is missing its shape; names the variables at fault. */
export class ConfigError extends SpendstreamError {
  readonly variables: readonly string[];

  constructor(message: string, details: { variables: readonly string[] }) {
    super('invalid_config', message);
    this.variables = details.variables;
  }
}

/** A store (PostgreSQL, Kafka, Redis) could not serve a request; usually worth retrying. */
export class StoreUnavailableError extends SpendstreamError {
  readonly store: 'postgres' | 'kafka' | 'redis';

  constructor(
    store: 'postgres' | 'kafka' | 'redis',
    message: string,
    options: SpendstreamErrorOptions = {},
  ) {
    super('unavailable', message, { retryable: true, ...options });
    this.store = store;
  }
}

/**
 * The totals of a bucket's users are incomplete (the store lost some of its writes and the
 * bucket is being replayed): worth asking again once it is repaired.
 */
export class TotalsIncompleteError extends SpendstreamError {
  readonly bucket: number;

  constructor(bucket: number, message: string, options: SpendstreamErrorOptions = {}) {
    super('unavailable', message, { retryable: true, ...options });
    this.bucket = bucket;
  }
}

/**
 * A rebuild or repair needs records the topic no longer holds: its retention deleted them
 * before a snapshot included them. Trying again cannot help; an operator must act.
 */
export class RecordsDeletedError extends SpendstreamError {
  readonly partition: number;
  readonly needed: string;
  readonly logStart: string;

  constructor(topic: string, partition: number, needed: string, logStart: string) {
    super(
      'unavailable',
      `the totals need ${topic}/${partition} from offset ${needed}, but its retention has ` +
        `deleted every record before ${logStart}: refusing to build totals that would miss them`,
    );
    this.partition = partition;
    this.needed = needed;
    this.logStart = logStart;
  }
}

/**
 * An existing topic keeps fewer copies of its records than configured: fewer replicas than
 * the replication factor, or a lower min.insync.replicas, so an ack may rest on fewer
 * brokers than intended. An operator must raise the topic's or allow it.
 */
export class WeakTopicError extends SpendstreamError {
  readonly topic: string;

  constructor(topic: string, shortfalls: readonly string[]) {
    super(
      'invalid_config',
      `Kafka topic ${topic} is weaker than configured: ${shortfalls.join('; ')}. Raise the ` +
        "topic's replication (Kafka's reassignment tool, kafka-configs) or set " +
        'KAFKA_ALLOW_WEAK_TOPICS=1 to start on it',
    );
    this.topic = topic;
  }
}

/** Narrows an unknown thrown value to a {@link SpendstreamError}. */
export const isSpendstreamError = (error: unknown): error is SpendstreamError =>
  error instanceof SpendstreamError;
