// Small process and port helpers shared by the scripts that start infrastructure.
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

/** Resolves whether a TCP server answers on host:port within `timeoutMs`. */
export const isServing = (host: string, port: number, timeoutMs = 1_000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

/** Sends SIGTERM and waits for the exit, killing the child if it outlasts `timeoutMs`. */
export const stopChild = (child: ChildProcess, timeoutMs = 10_000) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
