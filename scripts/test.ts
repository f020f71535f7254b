// `npm test`: starts the infrastructure the suite needs (whatever is not already
// serving), runs every test with node's test runner, then stops what it started.
// Arguments, if any, replace the default file globs: `npm test -- test/integration/x.test.ts`.
// Files run one at a time: fault tests stop and start the shared broker.
import { spawn } from 'node:child_process';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureInfrastructure, ROOT, stopAll } from './infra.ts';

const DEFAULT_FILES = ['src/**/*.test.ts', 'test/**/*.test.ts'];

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'test' });
log.info('node', { version: process.version });
const infrastructure = await ensureInfrastructure(config, log);

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
  { stdio: 'inherit', cwd: ROOT },
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => runner.kill(signal));
}
const exitCode = await new Promise<number>((resolve) =>
  runner.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))),
);
await stopAll(infrastructure, log);
process.exit(exitCode);
