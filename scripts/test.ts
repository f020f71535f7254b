// `npm test`: starts the infrastructure the suite needs (whatever is not already
// serving), runs every test with node's test runner, then stops what it started.
// Arguments, if any, replace the default file globs: `npm test -- test/integration/x.test.ts`.
// Files run one at a time: fault tests stop and start the shared broker.
import { spawn } from 'node:child_process';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureInfrastructure, ROOT, stopAll, type StartedService } from './infra.ts';
import { consecutivePorts, startRedisCluster } from './redisCluster.ts';

const DEFAULT_FILES = ['src/**/*.test.ts', 'test/**/*.test.ts'];

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'test' });
log.info('node', { version: process.version });
const infrastructure: StartedService[] = await ensureInfrastructure(config, log);

// The Redis Cluster the cluster variants of the Redis tests run on: 3 masters, 3 replicas
// on TEST_REDIS_CLUSTER_PORT (7000) and the five ports after it, unless
// TEST_REDIS_CLUSTER_NODES names one already running.
const clusterEnv: Record<string, string> = {};
if ((process.env['TEST_REDIS_CLUSTER_NODES'] ?? '') === '') {
  try {
    const base = Number(process.env['TEST_REDIS_CLUSTER_PORT'] ?? '') || 7000;
    const cluster = await startRedisCluster({ ports: consecutivePorts(base) });
    infrastructure.push(cluster);
    clusterEnv['TEST_REDIS_CLUSTER_NODES'] = cluster.nodes.join(',');
    log.info('started local redis cluster', { nodes: cluster.nodes });
  } catch (error) {
    await stopAll(infrastructure, log);
    throw error;
  }
}

const files = process.argv.slice(2);
const runner = spawn(
  process.execPath,
  [
    '--test',
    '--test-concurrency=1',
    '--test-timeout=300000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${ROOT}scripts/skippedReporter.ts`,
    '--test-reporter-destination=stdout',
    ...(files.length > 0 ? files : DEFAULT_FILES),
  ],
  { stdio: 'inherit', cwd: ROOT, env: { ...process.env, ...clusterEnv } },
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => runner.kill(signal));
}
const exitCode = await new Promise<number>((resolve) =>
  runner.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))),
);
await stopAll(infrastructure, log);
process.exit(exitCode);
