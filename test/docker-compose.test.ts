import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dockerCompose, locate, needs } from './outsideTools.ts';

const run = promisify(execFile);
const composeFile = fileURLToPath(new URL('../docker/docker-compose.yml', import.meta.url));

let composeCommand: Promise<readonly string[]> | undefined;
const compose = async (...args: string[]): Promise<string> => {
  const [bin = 'docker-compose', ...base] = await (composeCommand ??= locate(dockerCompose));
  try {
    const { stdout } = await run(bin, [...base, '-f', composeFile, ...args], { timeout: 60_000 });
    return stdout;
  } catch (error) {
    const { code, stderr } = error as { code?: unknown; stderr?: string };
    return assert.fail(
      `compose ${args.join(' ')} exited ${String(code)}:\n${stderr ?? String(error)}`,
    );
  }
};

/** The lines of one service in the resolved YAML (services sit at 2-space indent). */
const serviceBlock = (yaml: string, name: string): string => {
  const lines = yaml.split('\n');
  const start = lines.findIndex((line) => line === `  ${name}:`);
  assert.notEqual(start, -1, `service ${name} missing from resolved config`);
  const end = lines.findIndex((line, i) => i > start && /^ {0,2}\S/.test(line));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
};

test(
  'docker-compose.yml validates and defines the spendstream stack',
  await needs(dockerCompose),
  async () => {
    const services = (await compose('config', '--services')).split('\n').filter(Boolean);
    assert.deepEqual(services.toSorted(), ['ingest', 'kafka', 'postgres', 'redis', 'wallet']);
    assert.ok(!services.some((name) => /zookeeper/i.test(name)), 'no ZooKeeper service');

    const yaml = await compose('config');
    assert.doesNotMatch(yaml, /zookeeper/i, 'KRaft only: nothing may mention ZooKeeper');

    const kafka = serviceBlock(yaml, 'kafka');
    assert.match(kafka, /^\s+image: ['"]?apache\/kafka:/m);
    assert.match(kafka, /KAFKA_PROCESS_ROLES: ['"]?broker,controller['"]?$/m);
    assert.match(kafka, /KAFKA_CONTROLLER_QUORUM_VOTERS: ['"]?1@kafka:9093/);

    const redis = serviceBlock(yaml, 'redis');
    assert.match(redis, /--appendonly['"]?\s+(?:-\s+)?['"]?yes\b/, 'redis runs with AOF on');

    for (const name of ['kafka', 'postgres', 'redis']) {
      assert.match(serviceBlock(yaml, name), /^\s+healthcheck:\n(?:\s+.*\n)*?\s+test:/m, name);
    }

    assert.match(serviceBlock(yaml, 'wallet'), /dist\/wallet\.js/);
    for (const name of ['ingest', 'wallet']) {
      assert.match(serviceBlock(yaml, name), /dockerfile: docker\/Dockerfile/, name);
    }
    for (const name of services) {
      // Short form `- 127.0.0.1:8080:8080/tcp` (v1) or long form `host_ip: 127.0.0.1` (v2).
      const block = serviceBlock(yaml, name);
      const published = block.match(/^\s+(?:- ['"]?[\d.:]+:\d+|(?:- )?published:)/gm) ?? [];
      const loopback = block.match(
        /^\s+(?:- ['"]?127\.0\.0\.1:\d|(?:- )?host_ip: ['"]?127\.0\.0\.1)/gm,
      );
      assert.equal(loopback?.length ?? 0, published.length, `${name}: publish on 127.0.0.1 only`);
    }
  },
);
