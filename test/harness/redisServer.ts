// A redis-server of a test's own, persisting to a folder of its own, so a test can take a
// snapshot mid-run and restart Redis from it: the loss of its latest writes, as a restart
// from an RDB file or a replica behind its master brings.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { isServing } from '../../scripts/infra.ts';
import { eventually } from './eventually.ts';
import { freePort, trackChild, type Exit } from './processes.ts';
import { onTeardown, type TestHooks } from './teardown.ts';

const REDIS_SERVER = '/usr/bin/redis-server';

/**
 * Spawns `redis-server` on `port`, loading and saving `dir`/dump.rdb (only when told to
 * `SAVE`), and resolves once it serves.
 */
export const spawnRedisServer = async (
  port: number,
  dir: string,
): Promise<{ readonly child: ChildProcess; readonly exited: Promise<Exit> }> => {
  const server = spawn(
    REDIS_SERVER,
    [
      ...['--port', String(port), '--bind', '127.0.0.1'],
      ...['--dir', dir, '--dbfilename', 'dump.rdb'],
      ...['--save', '', '--appendonly', 'no'],
    ],
    { stdio: 'ignore' },
  );
  const exited = trackChild(server);
  await eventually(
    `redis-server on ${port} coming up`,
    () => {
      if (server.exitCode !== null) throw new Error(`redis-server on ${port} exited at start`);
      return isServing('127.0.0.1', port);
    },
    { timeoutMs: 10_000 },
  );
  return { child: server, exited };
};

/** A running {@link startRedisServer}. */
export interface RedisServer {
  readonly url: string;
  /** A client of its own (the caller quits it). */
  client(): Redis;
  /** `SAVE`: writes a snapshot of everything it holds now. */
  save(): Promise<void>;
  /**
   * Stops it without saving (`SHUTDOWN NOSAVE`) and starts it again from the last
   * snapshot: every write since that snapshot is gone.
   */
  restartFromSnapshot(): Promise<void>;
}

/**
 * Starts a redis-server on a free port with its snapshot file in a temporary folder and
 * no automatic saving: only {@link RedisServer.save} writes one. Stopped, and its folder
 * removed, when `t` ends.
 */
export const startRedisServer = async (t: TestHooks): Promise<RedisServer> => {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'spendstream-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<Exit> | undefined;
  const start = async () => {
    ({ child, exited } = await spawnRedisServer(port, dir));
  };
  const command = async (...args: string[]) => {
    const redis = createRedis({ url });
    try {
      return await redis.call(args[0] ?? 'PING', ...args.slice(1));
    } finally {
      redis.disconnect();
    }
  };
  await start();
  onTeardown(t, async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  return {
    url,
    client: () => createRedis({ url }),
    save: async () => {
      await command('SAVE');
    },
    restartFromSnapshot: async () => {
      // The connection is cut by the shutdown: its error is the expected outcome.
      await command('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      await exited;
      await start();
    },
  };
};
