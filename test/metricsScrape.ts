// Reads a service's /metrics and /readyz the way Prometheus and a load balancer do.
import assert from 'node:assert/strict';

/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the text format's samples (comments skipped). */
export const parseSamples = (text: string): Sample[] =>
  text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = SAMPLE.exec(line);
      assert.ok(match, `not a sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) {
        labels[name ?? ''] = (value ?? '').replace(/\\(.)/g, (_, c: string) =>
          c === 'n' ? '\n' : c,
        );
      }
      return { name: match[1] ?? '', labels, value: Number(match[3]) };
    });

/** The samples of `http://127.0.0.1:<port>/metrics`; fails unless it answers 200. */
export const scrape = async (port: number): Promise<Sample[]> => {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return parseSamples(await response.text());
};

/**
 * The sum of the samples named `name` whose labels include `labels`; undefined when there
 * is none, so a missing series fails a comparison with 0.
 */
export const valueOf = (
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined => {
  const matching = samples.filter(
    (sample) =>
      sample.name === name &&
      Object.entries(labels).every(([label, value]) => sample.labels[label] === value),
  );
  return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
};

/** A `/readyz` reply: its status code and body. */
export interface Readiness {
  readonly code: number;
  readonly status: string;
  readonly checks: Record<string, string>;
}

/** Asks `http://127.0.0.1:<port>/readyz`. */
export const readiness = async (port: number): Promise<Readiness> => {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  const body = (await response.json()) as { status: string; checks: Record<string, string> };
  return { code: response.status, status: body.status, checks: body.checks };
};
