// Services as child processes, started the way `npm start` starts them: the benchmark
// measures them, and tests signal, kill and restart them. The one place that spawns
// `node src/ingest.ts` and `node src/wallet.ts`, finds free ports and stops children.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, stopChild } from '../../scripts/infra.ts';
import { childEnv } from '../helpers.ts';

/** The output line each service logs once it serves. */
const READY = {
  ingest: 'ingest service listening',
  wallet: 'wallet service serving',
  // The primary's, once every worker serves (INGEST_WORKERS or WALLET_WORKERS above 1).
  workers: '"msg":"workers started"',
} as const;

/** How many of a process's last output lines are kept. */
const TAIL_LINES = 200;

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

/** How a child process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A service running as a child process. */
export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** Its last output lines, newest last. */
  readonly tail: readonly string[];
  /** Resolves once the process has exited. */
  readonly exited: Promise<Exit>;
  /** False once it has exited, even before node has reaped it (a crash shows at once). */
  readonly running: boolean;
  /** Sends a signal without waiting (SIGSTOP and SIGCONT included). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` and waits for the exit; a SIGTERM not obeyed in `timeoutMs` is a SIGKILL. */
  kill(signal: 'SIGKILL' | 'SIGTERM', timeoutMs?: number): Promise<Exit>;
  /** Stops it as a supervisor would: SIGTERM, SIGKILL after 30 s. */
  stop(): Promise<void>;
  /** The first parsed log line whose `msg` is `msg`, if any. */
  logLine(msg: string): Record<string, unknown> | undefined;
  /** Forgets the peak resident set so far (Linux `clear_refs`), to measure one run's peak. */
  resetPeakRss(): void;
  /** The resident set's peak (VmHWM) since start or the last reset, in MiB. */
  peakRssMiB(): number | undefined;
  /** Its child processes now (a primary's workers), from /proc; empty without /proc. */
  childPids(): number[];
}

/** How to start a service process. */
export interface StartOptions {
  /** Settings replaced in the environment the process inherits. */
  readonly env: Readonly<Record<string, string>>;
  /** Text of the output line that says it is ready. */
  readonly ready: string;
  /** How long it may take to get ready; 60 s unless set. */
  readonly timeoutMs?: number;
  /** Arguments to node before the entry (`--cpu-prof`, say). */
  readonly nodeArgs?: readonly string[];
  /** A file to append its whole output to. */
  readonly logFile?: string;
}

// Every child still running when this process exits is killed with it, so a crashed test
// or an interrupted benchmark leaves no services behind holding ports.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Has `child` killed if this process exits first; resolves once it has exited. */
export const trackChild = (child: ChildProcess): Promise<Exit> => {
  live.add(child);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
};

/**
 * Whether process `pid` has exited as /proc tells, before node reports it: gone, or a
 * zombie not yet reaped. Without /proc (not Linux) it cannot tell, and says no.
 */
const goneFromProc = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return existsSync('/proc/self/stat');
  }
};

const vmHwmKiB = (pid: number): number | undefined => {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
};

/**
 * Starts `node [nodeArgs] <entry>` with the environment plus `env`, and resolves once an
 * output line contains `ready`; rejects with its last output if it exits or is not ready
 * in time (and kills it).
 */
export const startService = (
  name: string,
  entry: string,
  { env, ready, timeoutMs = 60_000, nodeArgs = [], logFile }: StartOptions,
): Promise<ServiceProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, entry], {
      env: childEnv({ ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = trackChild(child);
    const log = logFile === undefined ? undefined : createWriteStream(logFile, { flags: 'a' });
    const tail: string[] = [];
    const parsed = new Map<string, Record<string, unknown>>();
    let isReady = false;
    let partial = '';
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${name} ${reason}; its last output:\n${tail.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    const onOutput = (chunk: Buffer) => {
      log?.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          const msg = String(entry['msg']);
          if (!parsed.has(msg)) parsed.set(msg, entry);
        } catch {
          // Not a log line (a stack trace from a crash, say): kept in the tail only.
        }
        if (!isReady && line.includes(ready)) {
          isReady = true;
          clearTimeout(timer);
          resolve(service);
        }
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    void exited.then(({ code, signal }) => {
      log?.end(`# ${name} exited with ${code ?? signal}\n`);
      if (!isReady) fail(`exited with ${code ?? signal} before it was ready`);
    });
    const pid = child.pid ?? 0;
    const service: ServiceProcess = {
      name,
      pid,
      tail,
      exited,
      get running() {
        return child.exitCode === null && child.signalCode === null && !goneFromProc(pid);
      },
      signal: (signal) => {
        if (service.running) child.kill(signal);
      },
      kill: async (signal, killAfterMs = 60_000) => {
        if (service.running) {
          if (signal === 'SIGTERM') await stopChild(child, killAfterMs);
          else child.kill(signal);
        }
        return exited;
      },
      stop: async () => {
        await service.kill('SIGTERM', 30_000);
      },
      logLine: (msg) => parsed.get(msg),
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
      childPids: () => {
        try {
          return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
            .split(' ')
            .filter((part) => part.trim() !== '')
            .map(Number);
        } catch {
          return [];
        }
      },
    };
  });

/** Options of a service start other than its settings. */
export type ProcessOptions = Omit<StartOptions, 'env' | 'ready'> & { readonly name?: string };

/**
 * The settings of a service process with its workers setting (`INGEST_WORKERS` or
 * `WALLET_WORKERS`) at 1 unless given: tests and the benchmark start one process each,
 * whatever the machine's CPUs; and the line that says it is ready, its primary's when
 * it runs workers.
 */
const withWorkers = (
  env: Readonly<Record<string, string>>,
  setting: 'INGEST_WORKERS' | 'WALLET_WORKERS',
  single: string,
) => {
  const workers = env[setting] ?? '1';
  return {
    env: { ...env, [setting]: workers },
    ready: Number(workers) > 1 ? READY.workers : single,
  };
};

/** Starts `node src/ingest.ts` with settings replaced; resolves once it listens. */
export const startIngestProcess = (
  env: Readonly<Record<string, string>>,
  { name = 'ingest', ...options }: ProcessOptions = {},
): Promise<ServiceProcess> =>
  startService(name, join(ROOT, 'src', 'ingest.ts'), {
    ...options,
    ...withWorkers(env, 'INGEST_WORKERS', READY.ingest),
  });

/** Starts `node src/wallet.ts` with settings replaced; resolves once it serves. */
export const startWalletProcess = (
  env: Readonly<Record<string, string>>,
  { name = 'wallet', ...options }: ProcessOptions = {},
): Promise<ServiceProcess> =>
  startService(name, join(ROOT, 'src', 'wallet.ts'), {
    ...options,
    ...withWorkers(env, 'WALLET_WORKERS', READY.wallet),
  });
