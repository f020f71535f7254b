// `npm run bench` keeps working: a short smoke run of the whole benchmark against the real
// services. It checks that every figure was produced, never how fast anything was.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BenchReport, LoadResult } from '../../bench/types.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const assertLoadRan = (name: string, result: LoadResult) => {
  assert.ok(result.acked > 0, `${name}: purchases were acked`);
  assert.ok(result.throughput > 0, `${name}: a throughput was measured`);
  assert.equal(result.latency.count, result.acked, `${name}: every ack's latency was recorded`);
  assert.ok(result.latency.p50 > 0 && result.latency.p50 <= result.latency.p99, name);
  assert.ok(result.latency.p99 <= result.latency.max, name);
};

test('npm run bench -- --smoke runs every part and writes its figures', async () => {
  const out = mkdtempSync(join(tmpdir(), 'spendstream-bench-'));
  try {
    const child = spawn(process.execPath, ['bench/run.ts', '--smoke', '--out', out], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, `the bench failed:\n${stdout}\n${stderr.slice(-4_000)}`);

    const report = JSON.parse(readFileSync(join(out, 'smoke.json'), 'utf8')) as BenchReport;
    assert.equal(report.smoke, true);
    assertLoadRan('peak', report.peak);
    assertLoadRan('half rate', report.halfRate);
    assertLoadRan('baseline', report.baseline.baseline);
    assertLoadRan('spendstream under the baseline load', report.baseline.spendstream);
    assert.ok(report.baseline.ratio > 0);
    assert.ok(report.freshness.probes > 0 && report.freshness.latency.count > 0);
    assert.ok(report.grpc.callsPerSecond > 0 && report.grpc.latency.count > 0);
    assert.ok(report.sweeps.batch.length >= 2 && report.sweeps.connections.length >= 2);
    for (const point of [...report.sweeps.batch, ...report.sweeps.connections]) {
      assertLoadRan(point.label, point.result);
    }
    assert.ok(report.peak.peakRssMiB !== undefined && report.peak.peakRssMiB > 0);
    assert.deepEqual(
      report.references.map((reference) => reference.name),
      [
        'postgres-multi-row',
        'postgres-single-row',
        'kafka-batched',
        'kafka-single',
        'redis-pipelined',
        'redis-single',
      ],
    );
    assert.ok(report.references.every((reference) => reference.perSecond > 0));
    // The rebuilds: every scenario and design timed, the snapshot design restoring users.
    const rebuild = report.rebuild;
    assert.ok(rebuild !== undefined, 'the rebuild section ran');
    assert.deepEqual(
      rebuild.runs.map((run) => `${run.scenario} ${run.design}`),
      [
        'short-history replay',
        'short-history snapshot',
        'full-history replay',
        'full-history snapshot',
        'few-users snapshot',
      ],
    );
    for (const run of rebuild.runs) {
      const name = `${run.scenario} ${run.design}`;
      assert.ok(run.seconds > 0 && run.records > 0 && run.replayedRecords > 0, name);
      assert.equal(run.usersChecked, run.users, `${name}: every total was checked`);
      if (run.design === 'snapshot') assert.equal(run.snapshotUsers, run.users, name);
    }
    assert.ok(Object.values(rebuild.ratios).every((ratio) => ratio > 0));
    // The outage: a backlog was kept, drained, and the totals checked against PostgreSQL.
    const outage = report.outage;
    assert.ok(outage !== undefined, 'the outage section ran');
    assert.ok(outage.rate > 0 && outage.outageSeconds > 0);
    assert.ok(outage.storedDuringOutage > 0 && outage.backlog.purchases > 0);
    assert.ok(outage.backlogDrainedSeconds > 0 && outage.drainPerSecond > 0);
    assert.ok(outage.consistentSeconds >= outage.outboxEmptySeconds);
    assert.ok(outage.usersChecked > 0);
    // What a person running it reads: the figures and the ratio.
    assert.match(stdout, /peak \(array frames\)\s+\d+ purchases\/s/);
    assert.match(stdout, /spendstream \/ baseline, same load:\s+[\d.]+×/);
    const markdown = readFileSync(join(out, 'benchmarks.md'), 'utf8');
    assert.match(markdown, /smoke run/);
    assert.match(markdown, /## Rebuild after a Redis wipe/);
    assert.match(markdown, /## Kafka outage under load/);
    assert.match(readFileSync(join(out, 'benchmarks.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\n$/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
