// deploy/ holds the Kubernetes manifests docs/scaling.md describes. These tests keep them
// valid Kubernetes objects, free of fields the API does not know, and true to the code
// they run; each check is also shown to refuse a broken copy.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consistencyProblems } from './deployConsistency.ts';
import {
  type KubeObject,
  loadManifests,
  type Manifest,
  schemaProblems,
  unknownFieldProblems,
} from './deployManifests.ts';

const manifests = await loadManifests();

test('deploy/ holds every object spendstream runs as', () => {
  const objects = manifests.map(({ object }) => `${object.kind} ${object.metadata?.name ?? ''}`);
  for (const expected of [
    'Kustomization ',
    'Namespace spendstream',
    'ConfigMap spendstream',
    'Secret spendstream',
    'Job spendstream-migrate',
    'Deployment spendstream-ingest',
    'Service spendstream-ingest',
    'PodDisruptionBudget spendstream-ingest',
    'HorizontalPodAutoscaler spendstream-ingest',
    'Deployment spendstream-wallet',
    'Service spendstream-wallet',
    'PodDisruptionBudget spendstream-wallet',
  ]) {
    assert.ok(objects.includes(expected), `no ${expected} in deploy/ (has ${objects.join('; ')})`);
  }
});

test("every object is valid by the Kubernetes API's schema", async () => {
  assert.deepEqual(await schemaProblems(manifests), []);
});

test('no object has a field the Kubernetes API does not define', () => {
  assert.deepEqual(unknownFieldProblems(manifests), []);
});

test('the manifests agree with the code: settings, ports, probes, selectors, drain', () => {
  assert.deepEqual(consistencyProblems(manifests), []);
});

// --- each check refuses a broken copy ----------------------------------------------------

type Path = readonly (string | number)[];

const object = (copy: Manifest[], kind: string, name: string): KubeObject => {
  const found = copy.find((m) => m.object.kind === kind && m.object.metadata?.name === name);
  assert.ok(found !== undefined, `${kind} ${name} is not in deploy/`);
  return found.object;
};
const get = (node: unknown, path: Path): unknown =>
  path.reduce<unknown>((at, key) => (at as Record<string | number, unknown>)[key], node);
/** Sets a field of a copy: broken copies hold values the types would refuse. */
const set = (node: unknown, path: Path, value: unknown): void => {
  const parent = get(node, path.slice(0, -1));
  assert.ok(typeof parent === 'object' && parent !== null, `no ${path.join('.')}`);
  (parent as Record<string | number, unknown>)[path.at(-1) ?? ''] = value;
};
const POD: Path = ['spec', 'template', 'spec'];
const CONTAINER: Path = [...POD, 'containers', 0];
const ingest = (copy: Manifest[]) => object(copy, 'Deployment', 'spendstream-ingest');
const wallet = (copy: Manifest[]) => object(copy, 'Deployment', 'spendstream-wallet');
const settings = (copy: Manifest[]) => object(copy, 'ConfigMap', 'spendstream');

const brokenCopies: {
  readonly name: string;
  readonly check: (copy: Manifest[]) => string[] | Promise<string[]>;
  readonly breaks: (copy: Manifest[]) => void;
  readonly refusal: RegExp;
}[] = [
  {
    name: 'a count that is not a number',
    check: schemaProblems,
    breaks: (copy) => set(wallet(copy), ['spec', 'replicas'], 'three'),
    refusal: /Deployment spendstream-wallet: .*replicas must be integer/,
  },
  {
    name: 'a kind the API does not have',
    check: schemaProblems,
    breaks: (copy) => set(object(copy, 'Service', 'spendstream-ingest'), ['apiVersion'], 'v2'),
    refusal: /no Kubernetes schema for v2 Service/,
  },
  {
    name: 'a misspelt field',
    check: unknownFieldProblems,
    breaks: (copy) => {
      const probe = [...CONTAINER, 'readinessProbe'];
      set(ingest(copy), [...probe, 'httpGett'], get(ingest(copy), [...probe, 'httpGet']));
    },
    refusal: /Deployment spendstream-ingest: .*'"?httpGett"?' does not exist/,
  },
  {
    name: 'a variable spendstream does not read',
    check: consistencyProblems,
    breaks: (copy) => set(settings(copy), ['data', 'WS_PROT'], '8080'),
    refusal: /ConfigMap spendstream: WS_PROT is not a setting/,
  },
  {
    name: 'a setting with an invalid value',
    check: consistencyProblems,
    breaks: (copy) => set(settings(copy), ['data', 'WS_PORT'], 'http'),
    refusal: /spendstream-ingest: container ingest: invalid configuration: WS_PORT="http"/,
  },
  {
    name: 'a container port the service does not listen on',
    check: consistencyProblems,
    breaks: (copy) => set(ingest(copy), [...CONTAINER, 'ports', 0, 'containerPort'], 8090),
    refusal: /container ports 8090; ingest listens on 8080/,
  },
  {
    name: 'a probe on a path the service does not serve',
    check: consistencyProblems,
    breaks: (copy) =>
      set(wallet(copy), [...CONTAINER, 'livenessProbe', 'httpGet', 'path'], '/live'),
    refusal: /livenessProbe path \/live is not served by src\/services\/walletService.ts/,
  },
  {
    name: 'liveness that waits on the stores',
    check: consistencyProblems,
    breaks: (copy) =>
      set(ingest(copy), [...CONTAINER, 'livenessProbe', 'httpGet', 'path'], '/readyz'),
    refusal: /livenessProbe on \/readyz/,
  },
  {
    name: 'a grace period shorter than the drain',
    check: consistencyProblems,
    breaks: (copy) => set(ingest(copy), [...POD, 'terminationGracePeriodSeconds'], 20),
    refusal: /terminationGracePeriodSeconds 20 < the 45 s stop/,
  },
  {
    name: 'one instance id for every ingest pod',
    check: consistencyProblems,
    breaks: (copy) =>
      set(ingest(copy), [...CONTAINER, 'env'], [{ name: 'INGEST_INSTANCE_ID', value: 'a' }]),
    refusal: /INGEST_INSTANCE_ID is one for every pod/,
  },
  {
    name: 'more wallet pods than partitions',
    check: consistencyProblems,
    breaks: (copy) => set(wallet(copy), ['spec', 'replicas'], 64),
    refusal: /64 wallet pods, 48 partitions/,
  },
  {
    name: 'a Service that selects no pods',
    check: consistencyProblems,
    breaks: (copy) =>
      set(
        object(copy, 'Service', 'spendstream-wallet'),
        ['spec', 'selector', 'app.kubernetes.io/component'],
        'wallets',
      ),
    refusal: /Service spendstream-wallet: selects 0 Deployments/,
  },
];

for (const { name, check, breaks, refusal } of brokenCopies) {
  test(`a manifest with ${name} is refused`, async () => {
    const copy = structuredClone(manifests);
    breaks(copy);
    const problems = await check(copy);
    assert.ok(
      problems.some((problem) => refusal.test(problem)),
      `expected ${String(refusal)}, got:\n${problems.join('\n')}`,
    );
  });
}
