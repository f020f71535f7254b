// `npm start`: brings up the infrastructure that is not already serving, applies the
// migrations, runs every service, and on Ctrl-C (or SIGTERM) stops what it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openMigratedDatabase } from '../src/adapters/database.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureInfrastructure, ROOT, stopAll } from './infra.ts';

/** The services `npm start` runs, each its own process (entry points under src/). */
const SERVICES = ['ingest', 'wallet'] as const;

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'start' });
const infrastructure = await ensureInfrastructure(config, log);
const children = new Map<string, ChildProcess>();
let stopping = false;

const shutdown = async (exitCode: number) => {
  if (stopping) return;
  stopping = true;
  log.info('stopping');
  await Promise.all(
    [...children.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
  await stopAll(infrastructure, log);
  process.exit(exitCode);
};
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

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
  services: [...children.keys()],
  websocket: `ws://${config.ws.host}:${config.ws.port}${config.ws.path}`,
  grpc: `${config.grpc.host}:${config.grpc.port}`,
  kafka: config.kafka.brokers.join(','),
});
// Child processes keep the loop alive once services exist; until then, this does.
setInterval(() => undefined, 1 << 30);
