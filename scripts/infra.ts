// Brings up what spendstream needs and is not already serving: Kafka (always from the
// project's own Maven-fetched broker), PostgreSQL and Redis (local servers from the
// Debian packages, only where nothing answers). Everything it starts it can stop again.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/config.ts';
import type { Logger } from '../src/logger.ts';
import { isServing, stopChild } from './children.ts';
import { consecutivePorts, startRedisCluster } from './redisCluster.ts';

export { isServing, stopChild };

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Something this script started, and how to stop it. */
export interface StartedService {
  readonly name: string;
  stop(): Promise<void>;
}

const isLoopback = (host: string) => ['localhost', '127.0.0.1', '::1', '[::1]'].includes(host);

/** Runs a command to completion, inheriting stdio; rejects on a non-zero exit. */
export const run = (command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};

const ensureKafka = async (config: Config, log: Logger): Promise<StartedService | undefined> => {
  const [host = 'localhost', portText = '9092'] = (config.kafka.brokers[0] ?? '').split(':');
  const port = Number(portText);
  if (await isServing(host, port)) {
    log.info('kafka already serving', { broker: `${host}:${port}` });
    return undefined;
  }
  if (!isLoopback(host)) throw new Error(`Kafka does not answer at ${host}:${port}`);
  // KAFKA_BROKERS_LOCAL=3 starts a 3-broker cluster, the first broker on `port`: the
  // services need only that one in KAFKA_BROKERS, their client finds the others.
  const brokers = process.env['KAFKA_BROKERS_LOCAL'];
  const env = {
    KAFKA_PORT: String(port),
    ...(brokers === undefined || brokers === '' ? {} : { KAFKA_BROKERS_LOCAL: brokers }),
  };
  await run('bash', [`${ROOT}scripts/kafka/start.sh`], env);
  return { name: 'kafka', stop: () => run('bash', [`${ROOT}scripts/kafka/stop.sh`], env) };
};

const postgresBinaries = (): string | undefined => {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((name) => existsSync(`${base}/${name}/bin/initdb`))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : `${base}/${versions[0]}/bin`;
};

/**
 * Where a PostgreSQL started here on `port` keeps its data: in the system's temporary
 * folder, not the checkout. The server runs as the package's `postgres` user when we are
 * root, and that user cannot enter a checkout in a home folder of mode 0700.
 */
export const localPostgresDataDir = (port: number): string =>
  join(tmpdir(), `spendstream-postgres-${port}`);

/** Options of {@link ensurePostgres}. */
export interface EnsurePostgresOptions {
  /**
   * Keep the data folder when the server stops, so a start on the same port finds its
   * databases again (the caller removes it). By default stopping removes it.
   */
  readonly keepData?: boolean;
}

/**
 * Starts a local PostgreSQL (Debian's binaries, a data folder per port, created once) on
 * the port of `config`'s DATABASE_URL unless something already serves there.
 */
export const ensurePostgres = async (
  config: Config,
  log: Logger,
  { keepData = false }: EnsurePostgresOptions = {},
): Promise<StartedService | undefined> => {
  const url = new URL(config.postgres.url);
  const host = url.hostname;
  const port = Number(url.port || 5432);
  if (await isServing(host, port)) {
    log.info('postgres already serving', { host, port });
    return undefined;
  }
  const bin = postgresBinaries();
  if (!isLoopback(host) || bin === undefined) {
    throw new Error(
      `PostgreSQL does not answer at ${host}:${port}. Start one there, point DATABASE_URL at one, ` +
        'or install the server (Debian: apt-get install postgresql) so it can be started locally.',
    );
  }
  const dataDir = localPostgresDataDir(port);
  // initdb and postgres refuse to run as root; use the package's postgres user then.
  const asOwner = (command: string, args: string[]): [string, string[]] =>
    process.getuid?.() === 0
      ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
      : [command, args];
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) await run('chown', ['-R', 'postgres:postgres', dataDir]);
  if (!existsSync(`${dataDir}/PG_VERSION`)) {
    log.info('initialising a local postgres cluster', { dataDir });
    await run(
      ...asOwner(`${bin}/initdb`, ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync']),
    );
  }
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dataDir}`;
  await run(
    ...asOwner(`${bin}/pg_ctl`, [
      '-D',
      dataDir,
      '-l',
      `${dataDir}/server.log`,
      '-o',
      options,
      '-w',
      'start',
    ]),
  );
  log.info('started local postgres', { port, dataDir });
  return {
    name: 'postgres',
    stop: async () => {
      await run(...asOwner(`${bin}/pg_ctl`, ['-D', dataDir, '-m', 'fast', '-w', 'stop']));
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
};

/**
 * With REDIS_CLUSTER_NODES: nothing when its first node answers; otherwise, for loopback
 * nodes, a local cluster of 3 masters and 3 replicas on the ports listed (continued one
 * by one past the last, up to six).
 */
const ensureRedisCluster = async (
  nodes: readonly string[],
  log: Logger,
): Promise<StartedService | undefined> => {
  const addresses = nodes.map((node) => {
    const at = node.lastIndexOf(':');
    return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
  });
  const [first] = addresses;
  if (first === undefined) return undefined;
  if (await isServing(first.host, first.port)) {
    log.info('redis cluster already serving', { node: nodes[0] });
    return undefined;
  }
  if (!addresses.every(({ host }) => isLoopback(host))) {
    throw new Error(`Redis Cluster does not answer at ${nodes[0] ?? ''}`);
  }
  const ports = addresses.map(({ port }) => port).slice(0, 6);
  const last = ports.at(-1) ?? first.port;
  ports.push(...consecutivePorts(last + 1, 6 - ports.length));
  const cluster = await startRedisCluster({ ports });
  log.info('started local redis cluster', { nodes: cluster.nodes });
  return cluster;
};

const ensureRedis = async (config: Config, log: Logger): Promise<StartedService | undefined> => {
  if (config.redis.clusterNodes !== undefined) {
    return ensureRedisCluster(config.redis.clusterNodes, log);
  }
  const url = new URL(config.redis.url);
  const host = url.hostname;
  const port = Number(url.port || 6379);
  if (await isServing(host, port)) {
    log.info('redis already serving', { host, port });
    return undefined;
  }
  const hasServer = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].some(existsSync);
  if (!isLoopback(host) || !hasServer) {
    throw new Error(
      `Redis does not answer at ${host}:${port}. Start one there, point REDIS_URL at one, ` +
        'or install the server (Debian: apt-get install redis-server) so it can be started locally.',
    );
  }
  const child = spawn(
    'redis-server',
    // Nothing on disk; its working folder is the temporary one, never the checkout.
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      tmpdir(),
    ],
    // A group of its own: a Ctrl-C reaches the wallet, which drains, and not Redis.
    { stdio: 'ignore', cwd: tmpdir(), detached: true },
  );
  await waitFor('redis', () => isServing(host, port), 10_000);
  log.info('started local redis', { port });
  return { name: 'redis', stop: () => stopChild(child) };
};

/**
 * Starts whichever of PostgreSQL, Redis and Kafka is not serving at its configured
 * address. Returns what it started, in start order; stop them in reverse.
 */
export const ensureInfrastructure = async (
  config: Config,
  log: Logger,
): Promise<StartedService[]> => {
  const started: StartedService[] = [];
  try {
    for (const ensure of [ensurePostgres, ensureRedis, ensureKafka]) {
      const service = await ensure(config, log);
      if (service !== undefined) started.push(service);
    }
    return started;
  } catch (error) {
    await stopAll(started, log);
    throw error;
  }
};

/** Stops services in reverse start order, logging (not throwing) what fails. */
export const stopAll = async (services: readonly StartedService[], log: Logger) => {
  for (const service of [...services].reverse()) {
    try {
      await service.stop();
      log.info(`stopped ${service.name}`);
    } catch (error) {
      log.error(`could not stop ${service.name}`, { error });
    }
  }
};
