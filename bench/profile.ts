// Summarises a V8 CPU profile (`node --cpu-prof`): where the process spent its time, by
// function and by package, self time only. The .cpuprofile itself opens as a flame graph
// in Chrome DevTools (Performance panel) or https://www.speedscope.app.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One line of a summary: what, and its share of the profile's samples. */
export interface ProfileEntry {
  readonly name: string;
  readonly percent: number;
}

/** The top entries of one profile, by function and by package. */
export interface ProfileSummary {
  readonly file: string;
  readonly seconds: number;
  readonly byFunction: readonly ProfileEntry[];
  readonly byPackage: readonly ProfileEntry[];
}

const where = (url: string): string => {
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const parts = url.slice(modules + 'node_modules/'.length).split('/');
    return (parts[0]?.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
  }
  const source = /\/((?:src|bench)\/.*)$/.exec(url);
  return source?.[1] ?? url;
};

const top = (totals: Map<string, number>, all: number, count: number): ProfileEntry[] =>
  [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, micros]) => ({ name, percent: Number(((100 * micros) / all).toFixed(1)) }));

/** Reads `file` and returns its `count` heaviest functions and packages. */
export const summariseProfile = (file: string, count = 15): ProfileSummary => {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const self = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let all = 0;
  for (const node of profile.nodes) {
    const micros = self.get(node.id) ?? 0;
    if (micros === 0) continue;
    all += micros;
    const { functionName, url, lineNumber } = node.callFrame;
    const place = url === '' ? '' : ` ${where(url)}:${lineNumber + 1}`;
    const fn = `${functionName === '' ? '(anonymous)' : functionName}${place}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros);
    const pkg = url === '' ? functionName || '(native)' : where(url).replace(/:.*$/, '');
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
  }
  return {
    file,
    seconds: Math.round(all / 1e6),
    byFunction: top(byFunction, all, count),
    byPackage: top(byPackage, all, count),
  };
};
