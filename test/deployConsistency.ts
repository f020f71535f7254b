// Whether the manifests in deploy/ run the code as it is: every variable they set is a
// setting src/config.ts reads and parses, each container listens where its ports and
// probes say, Services and budgets select pods, and pods are given time to drain.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import { type Config, loadConfig, SETTING_NAMES } from '../src/config.ts';
import { WALLET_SERVICE_NAME } from '../src/servers/grpc.ts';
import { label, kustomizationOf, type Manifest, ROOT } from './deployManifests.ts';

/** What a service's container must show: its listeners, from its parsed settings. */
interface ServiceShape {
  /** Where its start lists the HTTP routes it serves. */
  readonly source: string;
  readonly workers: 'INGEST_WORKERS' | 'WALLET_WORKERS';
  readonly http: (config: Config) => number;
  readonly grpc?: (config: Config) => number;
  readonly hosts: (config: Config) => string[];
  /** At most what a SIGTERM drain takes, past the preStop hook: docs/operating.md. */
  readonly drainSeconds: (config: Config) => number;
}

const SERVICES: Record<string, ServiceShape> = {
  ingest: {
    source: 'src/services/ingestService.ts',
    workers: 'INGEST_WORKERS',
    http: (c) => c.ws.port,
    hosts: (c) => [c.ws.host],
    drainSeconds: (c) => Math.ceil(c.ingest.shutdownTimeoutMs / 1000),
  },
  wallet: {
    source: 'src/services/walletService.ts',
    workers: 'WALLET_WORKERS',
    http: (c) => c.wallet.http.port,
    grpc: (c) => c.grpc.port,
    hosts: (c) => [c.grpc.host, c.wallet.http.host],
    // The batches in hand applied and committed (at most 10 s), open gRPC calls (5 s).
    drainSeconds: () => 15,
  },
};
/** Closing connections, the producer and the pool after the drain. */
const CLOSE_MARGIN_SECONDS = 10;
const ALL_INTERFACES = new Set(['0.0.0.0', '::']);
const SETTINGS = new Set<string>(SETTING_NAMES);
const byNumber = (a: number, b: number) => a - b;

/** The HTTP paths a service's start routes: the `'/path':` keys of its routes. */
const routesOf = (source: string): Set<string> =>
  new Set(
    [...readFileSync(join(ROOT, source), 'utf8').matchAll(/'(\/[\w-]*)':/g)].map(([, p]) => p),
  );

const ofKind = <T>(manifests: readonly Manifest[], kind: string) =>
  manifests.filter((m) => m.object.kind === kind).map((m) => ({ m, o: m.object as T }));

const matches = (selector: Record<string, string> = {}, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

interface Workload {
  readonly m: Manifest;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly pod: IPodSpec;
  readonly replicas: number | undefined;
}

const workloadsOf = (manifests: readonly Manifest[]): Workload[] => [
  ...ofKind<IDeployment>(manifests, 'Deployment').map(({ m, o }) => ({
    m,
    name: o.metadata?.name ?? '',
    labels: o.spec?.template.metadata?.labels ?? {},
    pod: o.spec?.template.spec ?? { containers: [] },
    replicas: o.spec?.replicas,
  })),
  ...ofKind<IJob>(manifests, 'Job').map(({ m, o }) => ({
    m,
    name: o.metadata?.name ?? '',
    labels: o.spec?.template.metadata?.labels ?? {},
    pod: o.spec?.template.spec ?? { containers: [] },
    replicas: undefined,
  })),
];

/** A Secret's values, `data` decoded. */
const secretValues = (secret: ISecret): Record<string, string> => ({
  ...Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  ),
  ...secret.stringData,
});

/** The environment a container starts with, as the kubelet builds it for pod `podName`. */
const environmentOf = (
  container: IContainer,
  manifests: readonly Manifest[],
  podName: string,
  problem: (text: string) => void,
): Record<string, string> => {
  const configMaps = new Map(
    ofKind<IConfigMap>(manifests, 'ConfigMap').map(({ o }) => [o.metadata?.name, o.data ?? {}]),
  );
  const secrets = new Map(
    ofKind<ISecret>(manifests, 'Secret').map(({ o }) => [o.metadata?.name, secretValues(o)]),
  );
  const source = (kind: 'ConfigMap' | 'Secret', name: string) => {
    const values = (kind === 'ConfigMap' ? configMaps : secrets).get(name);
    if (values === undefined) problem(`${kind} ${name} is not in deploy/`);
    return values ?? {};
  };
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.prefix !== undefined) problem('an envFrom prefix renames the settings');
    if (from.configMapRef) Object.assign(env, source('ConfigMap', from.configMapRef.name ?? ''));
    if (from.secretRef) Object.assign(env, source('Secret', from.secretRef.name ?? ''));
  }
  const fields: Record<string, string> = { 'metadata.name': podName, 'status.podIP': '10.1.2.3' };
  for (const { name, value, valueFrom } of container.env ?? []) {
    const field = valueFrom?.fieldRef?.fieldPath;
    const keyRef = valueFrom?.configMapKeyRef ?? valueFrom?.secretKeyRef;
    const kind = valueFrom?.configMapKeyRef ? 'ConfigMap' : 'Secret';
    const resolved =
      value ??
      (field === undefined ? undefined : fields[field]) ??
      (keyRef === undefined ? undefined : source(kind, keyRef.name ?? '')[keyRef.key]);
    if (resolved === undefined) problem(`${name} has no value this test can resolve`);
    else env[name] = resolved;
  }
  return env;
};

const preStopSeconds = (container: IContainer): number => {
  const { exec, sleep } = container.lifecycle?.preStop ?? {};
  const [bin, seconds] = exec?.command ?? [];
  return sleep?.seconds ?? (bin === 'sleep' ? Number(seconds) : 0);
};

const containerProblems = (
  workload: Workload,
  container: IContainer,
  manifests: readonly Manifest[],
  problem: (text: string) => void,
): void => {
  const entry = (container.command ?? []).join(' ').match(/^node dist\/(\w+)\.js$/)?.[1];
  if (entry === undefined || !existsSync(join(ROOT, `src/${entry}.ts`))) {
    problem(`command ${JSON.stringify(container.command)} is not \`node dist/<entry>.js\``);
    return;
  }
  const env = environmentOf(container, manifests, `${workload.name}-5d8f7c9b6-x2x9k`, problem);
  // The ConfigMap's and Secret's names are checked where they are set.
  for (const { name } of (container.env ?? []).filter(({ name }) => !SETTINGS.has(name))) {
    problem(`${name} is not a setting src/config.ts reads`);
  }
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    problem((error as Error).message);
    return;
  }
  const shape = SERVICES[entry];
  const ports = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]));
  if (shape === undefined) {
    if (ports.size > 0) problem(`${entry} listens on no port`);
    return;
  }
  if (env[shape.workers] !== '1') problem(`${shape.workers} must be 1: pods scale, not processes`);
  for (const host of shape.hosts(config)) {
    if (!ALL_INTERFACES.has(host))
      problem(`listens on ${host}: neither probes nor Services reach it`);
  }
  const expected = [shape.http(config), ...(shape.grpc ? [shape.grpc(config)] : [])].sort(byNumber);
  const declared = [...ports.values()].sort(byNumber);
  if (JSON.stringify(declared) !== JSON.stringify(expected)) {
    problem(`container ports ${declared.join(', ')}; ${entry} listens on ${expected.join(', ')}`);
  }
  const routes = routesOf(shape.source);
  const probes: [string, IProbe | undefined][] = [
    ['startupProbe', container.startupProbe],
    ['readinessProbe', container.readinessProbe],
    ['livenessProbe', container.livenessProbe],
  ];
  for (const [kind, probe] of probes) {
    if (probe === undefined) {
      if (kind !== 'startupProbe') problem(`no ${kind}`);
    } else if (probe.httpGet) {
      const { path = '/', port } = probe.httpGet;
      const number = typeof port === 'number' ? port : ports.get(port);
      if (number !== shape.http(config)) problem(`${kind} port ${port} is not the HTTP port`);
      if (!routes.has(path)) problem(`${kind} path ${path} is not served by ${shape.source}`);
      // Liveness must not restart a pod because a store is down: that is readiness.
      if (kind !== 'readinessProbe' && path !== '/healthz') problem(`${kind} on ${path}`);
    } else if (probe.grpc && shape.grpc) {
      if (probe.grpc.port !== shape.grpc(config)) problem(`${kind} gRPC port is not the server's`);
      if (![undefined, '', WALLET_SERVICE_NAME].includes(probe.grpc.service)) {
        problem(`${kind} asks the health of unknown service ${probe.grpc.service}`);
      }
    } else problem(`${kind} is neither an HTTP probe nor a gRPC one the service answers`);
  }
  const grace = workload.pod.terminationGracePeriodSeconds ?? 30;
  const needed = preStopSeconds(container) + shape.drainSeconds(config) + CLOSE_MARGIN_SECONDS;
  if (grace < needed) problem(`terminationGracePeriodSeconds ${grace} < the ${needed} s stop`);
  if (entry === 'ingest') {
    const id = container.env?.find((e) => e.name === 'INGEST_INSTANCE_ID');
    const perPod = id?.valueFrom?.fieldRef?.fieldPath === 'metadata.name';
    if (env['INGEST_INSTANCE_ID'] !== undefined && !perPod) {
      problem('INGEST_INSTANCE_ID is one for every pod (each would fence the others)');
    }
  }
  if (entry === 'wallet' && (workload.replicas ?? 1) > config.kafka.topicPartitions) {
    problem(`${workload.replicas} wallet pods, ${config.kafka.topicPartitions} partitions`);
  }
};

/** Everything in deploy/ that does not agree with the code, or with itself. */
export const consistencyProblems = (manifests: readonly Manifest[]): string[] => {
  const problems: string[] = [];
  const about = (m: Manifest) => (text: string) => problems.push(`${label(m)}: ${text}`);
  const workloads = workloadsOf(manifests);
  const deployments = workloads.filter(({ m }) => m.object.kind === 'Deployment');

  for (const { m, o } of ofKind<IConfigMap>(manifests, 'ConfigMap')) {
    for (const name of Object.keys(o.data ?? {}).filter((n) => !SETTINGS.has(n))) {
      about(m)(`${name} is not a setting src/config.ts reads`);
    }
  }
  for (const { m, o } of ofKind<ISecret>(manifests, 'Secret')) {
    for (const name of Object.keys(secretValues(o)).filter((n) => !SETTINGS.has(n))) {
      about(m)(`${name} is not a setting src/config.ts reads`);
    }
  }
  for (const workload of workloads) {
    for (const container of workload.pod.containers) {
      containerProblems(workload, container, manifests, (text) =>
        about(workload.m)(`container ${container.name}: ${text}`),
      );
    }
  }
  for (const { m, o } of ofKind<IService>(manifests, 'Service')) {
    const selected = deployments.filter((d) => matches(o.spec?.selector, d.labels));
    if (selected.length !== 1) about(m)(`selects ${selected.length} Deployments, not 1`);
    const ports = (selected[0]?.pod.containers ?? []).flatMap((c) => c.ports ?? []);
    for (const { targetPort = '' } of o.spec?.ports ?? []) {
      if (!ports.some((p) => p.name === targetPort || p.containerPort === targetPort)) {
        about(m)(`targetPort ${targetPort} is no port of the pods it selects`);
      }
    }
  }
  for (const { m, o } of ofKind<IPodDisruptionBudget>(manifests, 'PodDisruptionBudget')) {
    const selected = deployments.filter((d) => matches(o.spec?.selector?.matchLabels, d.labels));
    if (selected.length !== 1) about(m)(`selects ${selected.length} Deployments, not 1`);
  }
  for (const { m, o } of ofKind<IHorizontalPodAutoscaler>(manifests, 'HorizontalPodAutoscaler')) {
    const { kind, name } = o.spec?.scaleTargetRef ?? {};
    const target = deployments.find((d) => kind === 'Deployment' && d.name === name);
    if (target === undefined) about(m)(`scales ${kind} ${name}, not in deploy/`);
    // Applying the manifests again would reset the count the autoscaler chose.
    if (target?.replicas !== undefined) about(m)(`${name} sets replicas of its own`);
    if (target?.pod.containers.some((c) => c.resources?.requests?.['cpu'] === undefined)) {
      about(m)(`${name} requests no CPU: utilization has nothing to be a share of`);
    }
  }

  const kustomization = kustomizationOf(manifests);
  const files = readdirSync(join(ROOT, 'deploy'))
    .filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml')
    .sort();
  if (kustomization === undefined) problems.push('deploy/kustomization.yaml: missing or invalid');
  else if (JSON.stringify([...kustomization.resources].sort()) !== JSON.stringify(files)) {
    problems.push(`deploy/kustomization.yaml: resources are not ${files.join(', ')}`);
  }
  const images = new Set(
    workloads.flatMap((w) => w.pod.containers.map((c) => (c.image ?? '').replace(/[:@].*$/, ''))),
  );
  const named = new Set((kustomization?.images ?? []).map((image) => image.name));
  if (JSON.stringify([...images].sort()) !== JSON.stringify([...named].sort())) {
    problems.push(
      `deploy/kustomization.yaml: images name ${[...named].join(', ')}, containers run ${[...images].join(', ')}`,
    );
  }
  return problems;
};
