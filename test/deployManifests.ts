// The Kubernetes manifests in deploy/, read and checked three ways: against the Kubernetes
// API's schemas (kubernetes-models, generated from the API's OpenAPI), for fields the API
// does not know (those schemas allow any, as the API server does unless asked to be
// strict; the same models' TypeScript types do not), and against the code they run.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A Kubernetes object as a manifest holds it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** One document of a file in deploy/. */
export interface Manifest {
  /** From the repository root: `deploy/ingest.yaml`. */
  readonly file: string;
  /** The document's place in its file, from 1. */
  readonly index: number;
  readonly object: KubeObject;
}

/** How a problem names the object it is about. */
export const label = ({ file, index, object }: Manifest): string =>
  `${file}#${index} ${object.kind} ${object.metadata?.name ?? '(unnamed)'}`;

/** Every document of every YAML file in deploy/; a file that does not parse throws. */
export const loadManifests = async (root: string = ROOT): Promise<Manifest[]> => {
  const names = (await readdir(join(root, 'deploy'))).filter((n) => /\.ya?ml$/.test(n)).sort();
  const manifests: Manifest[] = [];
  for (const name of names) {
    const file = `deploy/${name}`;
    const documents = parseAllDocuments(await readFile(join(root, file), 'utf8'));
    let index = 0;
    for (const document of documents) {
      index += 1;
      const [error] = [...document.errors, ...document.warnings];
      if (error !== undefined) throw new Error(`${file}#${index}: ${error.message}`);
      const object: unknown = document.toJS();
      if (object === null) continue;
      const { success } = z
        .looseObject({ apiVersion: z.string(), kind: z.string() })
        .safeParse(object);
      if (!success) throw new Error(`${file}#${index}: not an object with apiVersion and kind`);
      manifests.push({ file, index, object: object as KubeObject });
    }
  }
  return manifests;
};

// kustomize's own schema is in no package here: the fields deploy/ uses, strictly.
const kustomizationSchema = z.strictObject({
  apiVersion: z.literal('kustomize.config.k8s.io/v1beta1'),
  kind: z.literal('Kustomization'),
  namespace: z.string().optional(),
  resources: z.array(z.string()),
  images: z
    .array(
      z.strictObject({
        name: z.string(),
        newName: z.string().optional(),
        newTag: z.string().optional(),
        digest: z.string().optional(),
      }),
    )
    .optional(),
});

/** The Kustomization's fields, once checked. */
export type Kustomization = z.infer<typeof kustomizationSchema>;

const isKustomization = (manifest: Manifest) => manifest.object.kind === 'Kustomization';

type ModelClass = new (data: object) => { validate(): void };

/** The kubernetes-models class of an apiVersion and kind: `kubernetes-models/apps/v1/Deployment`. */
const modelOf = async ({ apiVersion, kind }: KubeObject): Promise<ModelClass | undefined> => {
  if (!/^[\w.-]+(\/\w+)?$/.test(apiVersion) || !/^[A-Z]\w*$/.test(kind)) return undefined;
  try {
    const module = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<
      string,
      unknown
    >;
    const model = module[kind];
    return typeof model === 'function' ? (model as ModelClass) : undefined;
  } catch {
    return undefined;
  }
};

/** Objects the Kubernetes API's schema refuses: a missing field, a wrong type or value. */
export const schemaProblems = async (manifests: readonly Manifest[]): Promise<string[]> => {
  const problems: string[] = [];
  for (const manifest of manifests) {
    if (isKustomization(manifest)) {
      const parsed = kustomizationSchema.safeParse(manifest.object);
      if (!parsed.success) problems.push(`${label(manifest)}: ${parsed.error.message}`);
      continue;
    }
    const Model = await modelOf(manifest.object);
    if (Model === undefined) {
      const { apiVersion, kind } = manifest.object;
      problems.push(`${label(manifest)}: no Kubernetes schema for ${apiVersion} ${kind}`);
      continue;
    }
    try {
      new Model(manifest.object).validate();
    } catch (error) {
      problems.push(`${label(manifest)}: ${(error as Error).message}`);
    }
  }
  return problems;
};

const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2022.d.ts'],
  types: [],
};

/**
 * Fields of no Kubernetes type, at any depth (a misspelt `httpGett`): each object is
 * type-checked as an object literal of its kubernetes-models interface, which admits no
 * property the API does not define. Takes about half a second.
 */
export const unknownFieldProblems = (manifests: readonly Manifest[]): string[] => {
  const objects = manifests.filter((manifest) => !isKustomization(manifest));
  const imports = objects.map(
    ({ object }, i) =>
      `import type { I${object.kind} as T${i} } from 'kubernetes-models/${object.apiVersion}/${object.kind}';\n`,
  );
  let text = imports.join('');
  const ranges = objects.map(({ object }, i) => {
    const start = text.length;
    text += `export const m${i}: T${i} = ${JSON.stringify(object, undefined, 2)};\n`;
    return { start, end: text.length };
  });
  // Never written: a name in test/ so that kubernetes-models resolves from node_modules.
  const fileName = join(ROOT, 'test', '.deploy-manifests.ts');
  const host = ts.createCompilerHost(COMPILER_OPTIONS);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName
      ? ts.createSourceFile(name, text, language)
      : getSourceFile(name, language, ...rest);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], COMPILER_OPTIONS, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    const at = diagnostic.start ?? -1;
    const i = ranges.findIndex(({ start, end }) => at >= start && at < end);
    const owner = diagnostic.file?.fileName === fileName ? objects[i] : undefined;
    return `${owner === undefined ? (diagnostic.file?.fileName ?? 'typescript') : label(owner)}: ${message}`;
  });
};

/** The Kustomization of deploy/, if it parses. */
export const kustomizationOf = (manifests: readonly Manifest[]): Kustomization | undefined => {
  const manifest = manifests.find(isKustomization);
  const parsed = kustomizationSchema.safeParse(manifest?.object);
  return parsed.success ? parsed.data : undefined;
};
