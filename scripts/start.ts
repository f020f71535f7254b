// `npm start`: brings up the infrastructure that is not already serving, applies the
// migrations, runs every service, and on Ctrl-C (or SIGTERM) stops what it started.
// `--cluster` (`npm run start:cluster`) does the same for the distributed topology: a
// 3-broker Kafka, a Redis Cluster and the services as workers (scripts/clusterTopology.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openMigratedDatabase } from '../src/adapters/postgres/database.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { clusterSettings } from './clusterTopology.ts';
import { ensureInfrastructure, ROOT, stopAll, stopChild, type StartedService } from './infra.ts';

/** The services `npm start` runs, each its own process (entry points under src/). */
const SERVICES = ['ingest', 'wallet'] as const;

const topology = process.argv.includes('--cluster') ? 'cluster' : 'single';
// Before anything reads them: the services and scripts/kafka inherit this environment.
if (topology === 'cluster') Object.assign(process.env, clusterSettings(process.env, ROOT));
const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'start' });
const children = new Map<string, ChildProcess>();
let infrastructure: StartedService[] = [];
let stopping = false;
// A child that does not stop in time is killed: Ctrl-C must always get the prompt back.
const CHILD_STOP_TIMEOUT_MS = 45_000;

const shutdown = async (exitCode: number) => {
  if (stopping) return;
  stopping = true;
  log.info('stopping');
  await Promise.all([...children.values()].map((child) => stopChild(child, CHILD_STOP_TIMEOUT_MS)));
  await stopAll(infrastructure, log);
  log.info('stopped', { code: exitCode });
  process.exit(exitCode);
};
// Installed before anything starts; a signal during start-up stops what started so far.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true;
    if (infrastructure.length > 0 || children.size > 0) void shutdown(0);
  });
}
infrastructure = await ensureInfrastructure(config, log);
if (interrupted) await shutdown(0);

try {
  const { pool, applied } = await openMigratedDatabase(config.postgres);
  await pool.end();
  log.info('database ready', { applied });
} catch (error) {
  log.error('could not prepare the database', { error });
  await shutdown(1);
}

for (const name of SERVICES) {
  const entry = `${ROOT}src/${name}.ts`;
  if (!existsSync(entry)) continue;
  const child = spawn(process.execPath, [entry], { stdio: 'inherit' });
  children.set(name, child);
  child.once('exit', (code, signal) => {
    if (stopping) return;
    log.error(`${name} exited unexpectedly`, { code, signal });
    void shutdown(1);
  });
}
log.info('spendstream is up; Ctrl-C stops it', {
  topology,
  services: [...children.keys()],
  websocket: `ws://${config.ws.host}:${config.ws.port}${config.ws.path}`,
  grpc: `${config.grpc.host}:${config.grpc.port}`,
  kafka: config.kafka.brokers.join(','),
  redis: config.redis.clusterNodes?.join(',') ?? new URL(config.redis.url).host,
  statusPage: `http://${config.ws.host}:${config.ws.port}/`,
  metrics: [
    `http://${config.ws.host}:${config.ws.port}/metrics`,
    `http://${config.wallet.http.host}:${config.wallet.http.port}/metrics`,
  ],
});
// Child processes keep the loop alive once services exist; until then, this does.
setInterval(() => undefined, 1 << 30);
