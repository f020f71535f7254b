// Services under benchmark run as their own processes, started the way `npm start` does.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { stopChild } from '../scripts/infra.ts';

/** A service process under benchmark. */
export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** Forgets the peak resident set so far (Linux `clear_refs`), to measure one run's peak. */
  resetPeakRss(): void;
  /** The resident set's peak (VmHWM) since start or the last reset, in MiB. */
  peakRssMiB(): number | undefined;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on right now, from the OS. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('the OS gave no port')),
      );
    });
  });

const vmHwmKiB = (pid: number): number | undefined => {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
};

/**
 * Starts `node [nodeArgs] <entry>` with the environment plus `env`, and resolves once a
 * line of its output contains `ready`; rejects with its last output if it exits or is not
 * ready in time.
 */
export const startService = (
  name: string,
  entry: string,
  env: Readonly<Record<string, string>>,
  ready: string,
  timeoutMs = 60_000,
  nodeArgs: readonly string[] = [],
): Promise<ServiceProcess> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [...nodeArgs, entry], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let isReady = false;
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${name} ${reason}; its last output:\n${tail.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    const onOutput = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (!isReady && line.includes(ready)) {
          isReady = true;
          clearTimeout(timer);
          const pid = child.pid ?? 0;
          resolve({
            name,
            pid,
            resetPeakRss: () => {
              try {
                writeFileSync(`/proc/${pid}/clear_refs`, '5');
              } catch {
                // Not Linux, or not allowed: the peak then covers the process's life.
              }
            },
            peakRssMiB: () => {
              const kib = vmHwmKiB(pid);
              return kib === undefined ? undefined : Math.round(kib / 1024);
            },
            stop: () => stopChild(child, 30_000),
          });
        }
      }
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    child.once('exit', (code, signal) => {
      if (!isReady) fail(`exited with ${code ?? signal} before it was ready`);
    });
  });
