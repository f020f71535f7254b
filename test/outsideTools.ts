// Tests that need a program the project cannot install itself (a browser, docker-compose)
// are skipped where it is missing, naming the install command, and never counted as
// passed. SPENDSTREAM_REQUIRE_ALL=1 (set by .ci/run) runs them anyway, so a missing tool
// fails them instead.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** A program some tests need, where to find it and how to install it. */
export interface OutsideTool {
  readonly name: string;
  /** The command that installs it on Debian. */
  readonly install: string;
  /** The command line that runs it, or undefined when the machine lacks it. */
  locate(): Promise<readonly string[] | undefined>;
}

const onPath = (name: string): string | undefined =>
  (process.env['PATH'] ?? '')
    .split(delimiter)
    .map((dir) => join(dir, name))
    .find((candidate) => existsSync(candidate));

const answers = async (command: readonly string[]): Promise<boolean> => {
  const [bin, ...args] = command;
  if (bin === undefined) return false;
  try {
    await exec(bin, args, { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
};

/** Debian's Chromium, which playwright-core drives (it brings no browser of its own). */
export const chromium: OutsideTool = {
  name: 'Chromium',
  install: 'apt-get install chromium',
  locate: () => {
    const path =
      onPath('chromium') ?? (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);
    return Promise.resolve(path === undefined ? undefined : [path]);
  },
};

/** `docker compose` (the v2 plugin) or the standalone `docker-compose`. */
export const dockerCompose: OutsideTool = {
  name: 'docker-compose',
  install: 'apt-get install docker-compose',
  locate: async () => {
    for (const command of [['docker', 'compose'], ['docker-compose']]) {
      if (await answers([...command, 'version'])) return command;
    }
    return undefined;
  },
};

/** Whether every test must run, missing tools or not (`SPENDSTREAM_REQUIRE_ALL=1`). */
export const requireAll = (): boolean => process.env['SPENDSTREAM_REQUIRE_ALL'] === '1';

const missingMessage = (tool: OutsideTool) =>
  `${tool.name} is not installed: ${tool.install} (or run with it on PATH)`;

/**
 * node:test options for a test or suite that needs `tool`: `{ skip: <why, and the install
 * command> }` when the machine lacks it, unless every test is required.
 */
export const needs = async (tool: OutsideTool): Promise<{ skip?: string }> => {
  if ((await tool.locate()) !== undefined || requireAll()) return {};
  return { skip: missingMessage(tool) };
};

/** The tool's command line; throws, naming the install command, when it is missing. */
export const locate = async (tool: OutsideTool): Promise<readonly string[]> => {
  const command = await tool.locate();
  if (command === undefined) throw new Error(missingMessage(tool));
  return command;
};
