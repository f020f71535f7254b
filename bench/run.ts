// `npm run bench`: runs spendstream and the per-message baseline on this machine under the
// same load generator, times rebuilds after a Redis wipe and the recovery from a Kafka
// outage, and writes every figure to a JSON file, docs/benchmarks.md and a chart.
// `npm run bench -- --smoke --out DIR` is the short run the test suite does;
// `--only rebuild,outage` runs only those sections and writes only their JSON.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem, type } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Kafka } from 'kafkajs';
import { sql } from 'slonik';
import { z } from 'zod';
import { openMigratedDatabase } from '../src/adapters/postgres/database.ts';
import { createPostgresPool } from '../src/adapters/postgres/pool.ts';
import { createRedis } from '../src/adapters/redis/client.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureInfrastructure, ROOT, stopAll } from '../scripts/infra.ts';
import { eventually } from '../test/harness/eventually.ts';
import {
  freePort,
  startIngestProcess,
  startService,
  startWalletProcess,
  type ServiceProcess,
} from '../test/harness/processes.ts';
import { runFreshness } from './freshness.ts';
import { runGrpcLoad } from './grpcLoad.ts';
import { runLoad, type LoadOptions } from './loadgen.ts';
import { summariseProfile } from './profile.ts';
import { measureReferences } from './references.ts';
import { renderChart } from './report/chart.ts';
import { extractAnalysis, renderMarkdown } from './report/page.ts';
import { runOutageBench } from './outage.ts';
import { runRebuildBench } from './rebuild.ts';
import { outageTable, rebuildRatiosTable, rebuildTable } from './report/recovery.ts';
import type {
  BenchReport,
  LoadFigures,
  LoadResult,
  LoadSettings,
  SectionsReport,
  SweepPoint,
} from './types.ts';

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    out: { type: 'string' },
    // CPU profiles of the ingest and wallet processes during the main runs.
    profile: { type: 'boolean', default: false },
    // Comma-separated sections to run (load, rebuild, outage); all of them unless given.
    only: { type: 'string' },
  },
});
const smoke = args.smoke;
const SECTIONS = ['load', 'rebuild', 'outage'] as const;
type Section = (typeof SECTIONS)[number];
const only = (args.only ?? SECTIONS.join(',')).split(',').map((name) => name.trim());
const unknown = only.filter((name) => !(SECTIONS as readonly string[]).includes(name));
if (unknown.length > 0) {
  console.error(`--only: unknown sections ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
  process.exit(2);
}
const selected = (section: Section) => only.includes(section);
const allSections = SECTIONS.every(selected);
/** Measured seconds of each load run (sweep points get half). */
const seconds = Number(args.seconds ?? (smoke ? 1 : 15));
const warmupSeconds = smoke ? 0.5 : 3;
// A full run publishes its figures in the repository; a smoke run writes only to --out.
const outDir = args.out ?? join(ROOT, 'bench', 'results');
const docsDir = args.out ?? join(ROOT, 'docs');
const jsonPath = join(
  outDir,
  allSections
    ? smoke
      ? 'smoke.json'
      : 'latest.json'
    : smoke
      ? 'smoke-sections.json'
      : 'sections.json',
);
const chartPath = join(docsDir, 'benchmarks.svg');
const markdownPath = join(docsDir, 'benchmarks.md');

const config = loadConfig();
const log = createLogger(config.logLevel, { component: 'bench' });
const startedAt = new Date();
const clock = performance.now();
const runId = `bench_${startedAt.getTime().toString(36)}`;
const names = {
  database: `spendstream_${runId}`,
  topic: `${runId}_purchases`,
  deadLetters: `${runId}_dead_letters`,
  baselineTopic: `${runId}_baseline`,
  referenceTopic: `${runId}_reference`,
  redisPrefix: `${runId}:`,
  rebuildDatabase: `spendstream_${runId}_rebuild`,
  rebuildTopics: { many: `${runId}_rebuild_many`, few: `${runId}_rebuild_few` },
  rebuildDeadLetters: `${runId}_rebuild_dead_letters`,
  outageDatabase: `spendstream_${runId}_outage`,
};
const databaseUrl = (database: string) => {
  const url = new URL(config.postgres.url);
  url.pathname = `/${database}`;
  return url.toString();
};
const USERS = smoke ? 1_000 : 10_000;

const infrastructure = await ensureInfrastructure(config, log);
const running = new Set<ServiceProcess>();
const stopService = async (service: ServiceProcess | undefined) => {
  if (service === undefined) return;
  running.delete(service);
  await service.stop();
};

/** Removes everything the run created: processes, database, topics, Redis keys. */
const cleanUp = async () => {
  await Promise.all([...running].map((service) => stopService(service)));
  const admin = await createPostgresPool({ url: databaseUrl('postgres'), poolSize: 1 });
  for (const database of [names.database, names.rebuildDatabase, names.outageDatabase]) {
    await admin
      .query(sql.unsafe`DROP DATABASE IF EXISTS ${sql.identifier([database])} WITH (FORCE)`)
      .catch((error: unknown) => log.warn('could not drop a bench database', { error, database }));
  }
  await admin.end();
  const kafka = new Kafka({ brokers: [...config.kafka.brokers], clientId: 'spendstream-bench' });
  const kafkaAdmin = kafka.admin();
  try {
    await kafkaAdmin.connect();
    const existing = new Set(await kafkaAdmin.listTopics());
    const topics = [
      names.topic,
      names.deadLetters,
      names.baselineTopic,
      names.referenceTopic,
      names.rebuildTopics.many,
      names.rebuildTopics.few,
      names.rebuildDeadLetters,
    ];
    await kafkaAdmin.deleteTopics({ topics: topics.filter((topic) => existing.has(topic)) });
  } catch (error) {
    log.warn('could not delete the bench topics', { error });
  } finally {
    await kafkaAdmin.disconnect();
  }
  const redis = createRedis({ url: config.redis.url });
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${names.redisPrefix}*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
};

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    log.warn('interrupted: cleaning up');
    void cleanUp().finally(() => stopAll(infrastructure, log).finally(() => process.exit(130)));
  });
}

const versions = async () => {
  const pool = await createPostgresPool({ url: databaseUrl('postgres'), poolSize: 1 });
  const postgres = await pool.oneFirst(
    sql.type(z.object({ v: z.string() }))`SELECT current_setting('server_version') AS v`,
  );
  await pool.end();
  const redis = createRedis({ url: config.redis.url });
  const info = await redis.info('server');
  redis.disconnect();
  const pom = readFileSync(join(ROOT, 'scripts', 'kafka', 'pom.xml'), 'utf8');
  return {
    postgres,
    redis: /redis_version:(\S+)/.exec(info)?.[1],
    kafka: /<kafka\.version>([^<]+)</.exec(pom)?.[1],
  };
};

/** Ports and names of one spendstream deployment under test. */
const ports = { ws: await freePort(), grpc: await freePort() };
const wsUrl = `ws://127.0.0.1:${ports.ws}/ws`;
const grpcAddress = `127.0.0.1:${ports.grpc}`;
const serviceEnv = (topic: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: databaseUrl(names.database),
  KAFKA_TOPIC: topic,
  KAFKA_DEAD_LETTER_TOPIC: names.deadLetters,
  REDIS_KEY_PREFIX: names.redisPrefix,
  WALLET_GROUP_ID: `${topic}_wallet`,
  WS_HOST: '127.0.0.1',
  WS_PORT: String(ports.ws),
  GRPC_HOST: '127.0.0.1',
  GRPC_PORT: String(ports.grpc),
  WALLET_HTTP_PORT: '0',
  LOG_LEVEL: 'info',
  ...extra,
});
const profileDir = join(outDir, 'profiles');
const profiling = (on: boolean) =>
  args.profile && on ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
const startIngest = async (extra: Record<string, string> = {}, profile = false) => {
  const service = await startIngestProcess(serviceEnv(names.topic, extra), {
    nodeArgs: profiling(profile),
  });
  running.add(service);
  return service;
};
const startWallet = async (profile = false) => {
  const service = await startWalletProcess(serviceEnv(names.topic), {
    nodeArgs: profiling(profile),
  });
  running.add(service);
  return service;
};

/** Summaries of the profiles the first ingest and wallet processes wrote on exit. */
const summariseProfiles = (pids: Record<string, number>) =>
  Object.entries(pids).flatMap(([service, pid]) => {
    const files = existsSync(profileDir)
      ? readdirSync(profileDir).filter((file) => file.includes(`.${pid}.`))
      : [];
    return files.map((file) => {
      const summary = summariseProfile(join(profileDir, file));
      console.log(
        `profile of ${service} (${summary.seconds} s of samples): ${relative(ROOT, summary.file)}`,
      );
      for (const entry of summary.byPackage.slice(0, 10)) {
        console.log(`  ${String(entry.percent).padStart(5)}%  ${entry.name}`);
      }
      return { service, ...summary, file: relative(ROOT, summary.file) };
    });
  });

/** Waits until the wallet group has committed every record of `topic` (bounded). */
const walletCaughtUp = async (topic: string, groupId: string, timeoutMs = 180_000) => {
  const admin = new Kafka({
    brokers: [...config.kafka.brokers],
    clientId: 'spendstream-bench',
  }).admin();
  await admin.connect();
  try {
    const lag = async () => {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return ends.reduce((sum, { partition, high }) => {
        const done = committed?.partitions.find((p) => p.partition === partition)?.offset ?? '0';
        return sum + Math.max(0, Number(high) - Math.max(0, Number(done)));
      }, 0);
    };
    const caughtUp = await eventually('the wallet caught up', async () => (await lag()) === 0, {
      timeoutMs,
      intervalMs: 500,
      onTimeout: 'resolve',
    });
    if (!caughtUp) log.warn('the wallet did not catch up in time; measuring anyway', { topic });
  } finally {
    await admin.disconnect();
  }
};

let runs = 0;
const load = async (
  label: string,
  settings: Omit<LoadSettings, 'seconds' | 'users'> & { seconds?: number },
  server?: ServiceProcess,
  extra: Partial<LoadOptions> = {},
): Promise<LoadResult> => {
  runs += 1;
  server?.resetPeakRss();
  const result = await runLoad({
    url: wsUrl,
    users: USERS,
    seconds,
    warmupSeconds,
    idPrefix: `${runId}-${String(runs).padStart(3, '0')}`,
    userPrefix: 'bench-user-',
    ...settings,
    ...extra,
  });
  const peakRssMiB = server?.peakRssMiB();
  const measured = peakRssMiB === undefined ? result : { ...result, peakRssMiB };
  const errors = Object.entries(measured.errors)
    .map(([code, count]) => `${code}=${count}`)
    .join(' ');
  console.log(
    `${label.padEnd(34)} ${String(measured.throughput).padStart(7)} purchases/s  ` +
      `p50 ${measured.latency.p50} ms  p99 ${measured.latency.p99} ms  max ${measured.latency.max} ms` +
      (peakRssMiB === undefined ? '' : `  rss ${peakRssMiB} MiB`) +
      (errors === '' ? '' : `  errors ${errors}`),
  );
  return measured;
};

/** The load runs, the baseline and the references: everything but rebuilds and outages. */
const measureLoad = async (): Promise<LoadFigures> => {
  // The run's database exists already (created and migrated before main).
  const references = await measureReferences({
    databaseUrl: databaseUrl(names.database),
    redisUrl: config.redis.url,
    redisPrefix: names.redisPrefix,
    kafkaBrokers: config.kafka.brokers,
    kafkaTopic: names.referenceTopic,
    partitions: config.kafka.topicPartitions,
    seconds: smoke ? 0.5 : 3,
  });
  for (const reference of references) {
    console.log(
      `reference ${reference.name.padEnd(24)} ${String(reference.perSecond).padStart(9)}/s  ${reference.description}`,
    );
  }

  // spendstream, default settings, the wallet consuming alongside.
  let ingest = await startIngest({}, true);
  const wallet = await startWallet(true);
  const profiled = { ingest: ingest.pid, wallet: wallet.pid };
  // A cold process (JIT, pools, the wallet joining its group) is not what is measured.
  await load('warm-up (not reported)', {
    connections: 4,
    window: 1_000,
    frameSize: 100,
    seconds: smoke ? 1 : 10,
  });
  const peak = await load(
    'peak (array frames)',
    { connections: 4, window: 1_000, frameSize: 100 },
    ingest,
  );
  const single = await load(
    'single-purchase frames',
    { connections: 8, window: 500, frameSize: 1 },
    ingest,
  );
  const halfRateTarget = Math.max(100, Math.round(peak.throughput / 2));
  const [halfRate, freshness] = await Promise.all([
    load(
      'half the peak rate',
      { connections: 8, window: 5_000, frameSize: 100, rate: halfRateTarget },
      ingest,
    ),
    runFreshness({
      wsUrl,
      grpcAddress,
      userPrefix: `${runId}-probe-`,
      users: 20,
      idPrefix: `${runId}-probe`,
      seconds: warmupSeconds + seconds,
      intervalMs: 50,
      timeoutMs: 10_000,
    }),
  ]);
  console.log(
    `freshness                          ${freshness.probes} probes  p50 ${freshness.latency.p50} ms  p99 ${freshness.latency.p99} ms  timed out ${freshness.timedOut}`,
  );
  // Past the admission limit (INGEST_MAX_UNACKED, 50,000 by default) the server stops
  // reading sockets: offering 4× and 16× that must not grow its memory.
  const overload: SweepPoint[] = [];
  for (const [connections, times] of [
    [16, 4],
    [64, 16],
  ] as const) {
    const label = `${times}× the admission limit`;
    const window = (times * 50_000) / connections;
    const result = await load(`overload ${label}`, { connections, window, frameSize: 500 }, ingest);
    overload.push({ label, result });
  }
  // Overload leaves purchases read but not yet answered when its clients go away: the runs
  // after it start on a drained, fresh ingest instead of queueing behind that backlog.
  await stopService(ingest);
  ingest = await startIngest();
  // Reads are measured on their own, not against a wallet still applying the overload.
  await walletCaughtUp(names.topic, `${names.topic}_wallet`);
  const grpcUsers = Array.from({ length: USERS }, (_, i) => `bench-user-${i}`);
  const grpc = await runGrpcLoad({
    address: grpcAddress,
    callers: 64,
    connections: 4,
    servers: 1,
    seconds,
    warmupSeconds,
    users: grpcUsers,
  });
  console.log(
    `GetBalance                         ${grpc.callsPerSecond} calls/s  p50 ${grpc.latency.p50} ms  p99 ${grpc.latency.p99} ms  errors ${grpc.errors}`,
  );

  const sweepSeconds = Math.max(1, Math.round(seconds / 2));
  const connectionsSweep: SweepPoint[] = [];
  const windows: Array<[number, number]> = smoke
    ? [
        [1, 200],
        [8, 2_000],
      ]
    : [
        [1, 200],
        [2, 500],
        [4, 1_000],
        [8, 2_000],
        [16, 2_000],
        [32, 1_000],
      ];
  for (const [connections, window] of windows) {
    const label = `${connections} conn × ${window}`;
    const result = await load(
      `sweep ${label}`,
      { connections, window, frameSize: 100, seconds: sweepSeconds },
      ingest,
    );
    connectionsSweep.push({ label, result });
  }

  const batchSweep: SweepPoint[] = [];
  const batches: Array<[number, number]> = smoke
    ? [
        [100, 2],
        [1_000, 5],
      ]
    : [
        [100, 1],
        [250, 2],
        [500, 5],
        [1_000, 5],
        [2_000, 10],
        [5_000, 20],
      ];
  for (const [batchMaxSize, batchMaxWaitMs] of batches) {
    await stopService(ingest);
    ingest = await startIngest({
      INGEST_BATCH_MAX_SIZE: String(batchMaxSize),
      INGEST_BATCH_MAX_WAIT_MS: String(batchMaxWaitMs),
    });
    const label = `batch ${batchMaxSize} / ${batchMaxWaitMs} ms`;
    const result = await load(
      `sweep ${label}`,
      { connections: 4, window: 1_000, frameSize: 100, seconds: sweepSeconds },
      ingest,
    );
    batchSweep.push({ label, batchMaxSize, batchMaxWaitMs, result });
  }
  // The ingest path with the machine to itself; the wallet catches up afterwards.
  await stopService(wallet);
  await stopService(ingest);
  const profiles = args.profile ? summariseProfiles(profiled) : undefined;
  ingest = await startIngest();
  const ingestOnly = await load(
    'ingest alone (wallet stopped)',
    { connections: 4, window: 1_000, frameSize: 100 },
    ingest,
  );
  await stopService(ingest);

  // The per-message design, same machine, same load, straight after.
  const baselineIngest = await startService(
    'baseline ingest',
    join(ROOT, 'bench', 'baseline', 'ingest.ts'),
    { env: serviceEnv(names.baselineTopic), ready: 'baseline ingest listening' },
  );
  running.add(baselineIngest);
  const baselineWallet = await startService(
    'baseline wallet',
    join(ROOT, 'bench', 'baseline', 'wallet.ts'),
    { env: serviceEnv(names.baselineTopic), ready: 'baseline wallet consuming' },
  );
  running.add(baselineWallet);
  const baseline = await load(
    'baseline, single-purchase frames',
    { connections: 8, window: 500, frameSize: 1 },
    baselineIngest,
  );
  await stopService(baselineIngest);
  await stopService(baselineWallet);
  const ratio =
    baseline.throughput === 0 ? 0 : Number((single.throughput / baseline.throughput).toFixed(1));
  console.log(
    `spendstream / baseline, same load:  ${ratio}× (${single.throughput} vs ${baseline.throughput} purchases/s)`,
  );

  return {
    peak,
    halfRate,
    baseline: { baseline, spendstream: single, ratio },
    ingestOnly,
    ...(profiles === undefined ? {} : { profiles }),
    overload,
    freshness,
    grpc,
    sweeps: { batch: batchSweep, connections: connectionsSweep },
    references,
  };
};

const print = (line: string) => console.log(line);

/** Wallet rebuilds after a Redis wipe, on the shared broker, in a database of their own. */
const measureRebuild = () =>
  runRebuildBench({
    brokers: config.kafka.brokers,
    partitions: config.kafka.topicPartitions,
    retentionMs: config.kafka.topicRetentionMs,
    databaseUrl: databaseUrl(names.rebuildDatabase),
    redisUrl: config.redis.url,
    redisPrefix: `${names.redisPrefix}rebuild:`,
    topics: names.rebuildTopics,
    deadLetterTopic: names.rebuildDeadLetters,
    idPrefix: `${runId}-rebuild`,
    users: smoke ? { many: 1_000, few: 100 } : { many: 10_000, few: 1_000 },
    records: smoke ? 100_000 : 5_000_000,
    tail: smoke ? 1_000 : 50_000,
    snapshotIntervalMs: smoke ? 1_000 : 5_000,
    timeoutMs: (smoke ? 2 : 30) * 60_000,
    startWallet: async (env) => {
      const service = await startWalletProcess(env, {
        timeoutMs: 120_000,
        logFile: join(tmpdir(), `${runId}-rebuild-wallets.log`),
      });
      running.add(service);
      return service;
    },
    stopWallet: stopService,
    print,
  });

/** A Kafka outage under load, on a broker of its own (it is stopped and started). */
const measureOutage = () =>
  runOutageBench({
    databaseUrl: databaseUrl(names.outageDatabase),
    redisUrl: config.redis.url,
    redisPrefix: `${names.redisPrefix}outage:`,
    topic: `${runId}_outage_purchases`,
    deadLetterTopic: `${runId}_outage_dead_letters`,
    partitions: config.kafka.topicPartitions,
    idPrefix: `${runId}-outage`,
    users: USERS,
    outageSeconds: smoke ? 5 : 60,
    calibrateSeconds: smoke ? 1 : 10,
    beforeSeconds: smoke ? 1 : 10,
    // A smoke run's outbox recovers within seconds; a full run's with the defaults.
    ingestEnv: smoke
      ? {
          INGEST_DURABLE_DEADLINE_MS: '1000',
          OUTBOX_MIN_AGE_MS: '2000',
          OUTBOX_RECOVERY_INTERVAL_MS: '1000',
        }
      : {},
    timeoutMs: (smoke ? 2 : 10) * 60_000,
    startIngest: async (env) => {
      const service = await startIngestProcess(env);
      running.add(service);
      return service;
    },
    startWallet: async (env) => {
      const service = await startWalletProcess(env);
      running.add(service);
      return service;
    },
    stopService,
    print,
  });

const main = async (): Promise<SectionsReport> => {
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${type()} ${release()}`,
    ...(await versions()),
  };
  console.log(
    `spendstream bench ${smoke ? '(smoke) ' : ''}on ${machine.cpus} × ${machine.cpuModel}`,
  );
  const load = selected('load') ? await measureLoad() : undefined;
  const rebuild = selected('rebuild') ? await measureRebuild() : undefined;
  if (rebuild !== undefined) {
    console.log(`\n${rebuildTable(rebuild)}\n\n${rebuildRatiosTable(rebuild)}\n`);
  }
  // Last: it stops a broker (its own), and the machine is quiet for its load.
  const outage = selected('outage') ? await measureOutage() : undefined;
  if (outage !== undefined) console.log(`\n${outageTable(outage)}\n`);
  return {
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((performance.now() - clock) / 1_000),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    smoke,
    machine,
    ...load,
    ...(rebuild === undefined ? {} : { rebuild }),
    ...(outage === undefined ? {} : { outage }),
  };
};

/** The whole report, when every section ran. */
const isWhole = (report: SectionsReport): report is BenchReport => allSections && 'peak' in report;

let exitCode = 0;
try {
  for (const database of [names.database, names.rebuildDatabase, names.outageDatabase]) {
    const { pool } = await openMigratedDatabase({ url: databaseUrl(database) });
    await pool.end();
  }
  const report = await main();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  if (isWhole(report)) {
    mkdirSync(docsDir, { recursive: true });
    writeFileSync(chartPath, renderChart(report));
    // The hand-written analysis below the page's marker survives a re-run.
    const analysis = existsSync(markdownPath)
      ? extractAnalysis(readFileSync(markdownPath, 'utf8'))
      : undefined;
    writeFileSync(
      markdownPath,
      renderMarkdown(report, {
        chartPath: relative(docsDir, chartPath),
        jsonPath: relative(docsDir, jsonPath),
        ...(analysis === undefined ? {} : { analysis }),
      }),
    );
    console.log(
      `wrote ${relative(ROOT, jsonPath)}, ${relative(ROOT, markdownPath)}, ${relative(ROOT, chartPath)}`,
    );
  } else {
    // Some sections only: their figures, not a page that would lack the others.
    console.log(`wrote ${relative(ROOT, jsonPath)}`);
  }
} catch (error) {
  if (!interrupted) {
    log.error('bench failed', { error });
    exitCode = 1;
  }
} finally {
  if (!interrupted) {
    await cleanUp();
    await stopAll(infrastructure, log);
  }
}
process.exit(exitCode);
