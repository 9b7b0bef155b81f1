// The two production install paths — `kubectl apply -k deploy/` (plus its
// optional components) and the Helm chart deploy/helm/nodeeni — rendered with
// the pinned kubectl and helm, applied with a server-side dry run to the real
// API server of this test run, and compared with each other: the chart with
// the base's settings renders the base's objects, and with every option on it
// grants each ServiceAccount exactly what the kustomize overlay with the same
// options grants. The controllers' pods must pass the `restricted` Pod
// Security Standard (the API server's own PodSecurity admission answers), the
// node agent mounts no token, and every environment variable the chart sets is
// accepted by the components' own configuration schemas (workers/config.ts),
// with the Temporal TLS and API-key Secrets mounted where the variables point.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { PROJECT_ROOT, TOOL, TOOLS_DIR, requireTool } from '../sandbox/backends/tools.js';
import { controlConfigSchema, loadConfig, nodeAgentConfigSchema, temporalTlsEnabled, watcherConfigSchema } from '../workers/config.js';
import { getBackends } from './support/backends.js';
import { DEFAULT_CONTROL_TASK_QUEUE, EC2_APIS, ec2TaskQueue } from '../common/names.js';

const HELM = path.join(TOOLS_DIR, 'bin', 'helm');
const CHART = path.join(PROJECT_ROOT, 'deploy', 'helm', 'nodeeni');
const DEPLOY = path.join(PROJECT_ROOT, 'deploy');
const CONTROLLERS_NS = 'nodeeni-system';
const AGENT_NS = 'nodeeni-node-agent';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One option set, expressed both as a kustomize overlay and as Helm values. */
const OPTIONS = {
  image: 'registry.example.com/nodeeni',
  tag: '0.1.0',
  temporalAddress: 'temporal.example.com:7233',
  temporalNamespace: 'nodeeni',
  region: 'eu-west-1',
  clusterName: 'prod-eu-1',
  roleArn: 'arn:aws:iam::123456789012:role/nodeeni-controller',
  devicePluginNamespaces: ['kube-system', 'sriov-network-operator'],
  configMap: { namespace: 'kube-system', name: 'nodeeni-sriovdp-config' },
};

/**
 * What a cluster admin writes to run deploy/ with every option (the README's
 * overlay example): both components, the device-plugin Role in a second
 * namespace, the image, Temporal, region, cluster name and the IRSA role.
 */
function kustomizeOverlay(deployRel: string): Record<string, string> {
  const env = (container: string, name: string, vars: Record<string, string>) => `
  - patch: |-
      apiVersion: apps/v1
      kind: ${name === 'nodeeni-node-agent' ? 'DaemonSet' : 'Deployment'}
      metadata: { name: ${name}, namespace: ${name === 'nodeeni-node-agent' ? AGENT_NS : CONTROLLERS_NS} }
      spec:
        template:
          spec:
            containers:
              - name: ${container}
                env:
${Object.entries(vars).map(([k, v]) => `                  - { name: ${k}, value: "${v}" }`).join('\n')}`;
  const temporal = { TEMPORAL_ADDRESS: OPTIONS.temporalAddress, TEMPORAL_NAMESPACE: OPTIONS.temporalNamespace };
  const [, second] = OPTIONS.devicePluginNamespaces;
  return {
    'kustomization.yaml': `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ${deployRel}
  - device-plugin-rbac.yaml
components:
  - ${deployRel}/components/resctrl
  - ${deployRel}/components/device-plugin-configmap
images:
  - { name: nodeeni, newName: ${OPTIONS.image}, newTag: "${OPTIONS.tag}" }
patches:
  - target: { kind: ServiceAccount, name: nodeeni-control-worker }
    patch: |-
      - op: add
        path: /metadata/annotations
        value: { eks.amazonaws.com/role-arn: "${OPTIONS.roleArn}" }${env('worker', 'nodeeni-control-worker', { ...temporal, AWS_REGION: OPTIONS.region, DEVICE_PLUGIN_NAMESPACES: OPTIONS.devicePluginNamespaces.join(','), CLUSTER_NAME: OPTIONS.clusterName })}${env('watcher', 'nodeeni-watcher', { ...temporal, CLUSTER_NAME: OPTIONS.clusterName })}${env('agent', 'nodeeni-node-agent', temporal)}
`,
    'device-plugin-rbac.yaml': `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: nodeeni-device-plugin-restart, namespace: ${second} }
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: nodeeni-device-plugin-restart, namespace: ${second} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: nodeeni-device-plugin-restart }
subjects:
  - { kind: ServiceAccount, name: nodeeni-control-worker, namespace: ${CONTROLLERS_NS} }
`,
  };
}

/** Helm values for the base's placeholders (nodeeni:latest, no pull policy): must render the base. */
const HELM_AS_BASE = { image: { tag: 'latest', pullPolicy: '' } };

/** Helm values for the same options as the overlay. */
const HELM_AS_OVERLAY = {
  image: { repository: OPTIONS.image, tag: OPTIONS.tag, pullPolicy: '' },
  temporal: { address: OPTIONS.temporalAddress, namespace: OPTIONS.temporalNamespace },
  aws: { region: OPTIONS.region, roleArn: OPTIONS.roleArn },
  clusterName: OPTIONS.clusterName,
  resctrl: { enabled: true },
  devicePlugin: { namespaces: OPTIONS.devicePluginNamespaces, configMap: { enabled: true, ...OPTIONS.configMap } },
};

const TLS_SECRET = 'temporal-client-tls';
const API_KEY_SECRET = 'temporal-api-key';
const API_KEY_KEY = 'apiKey';
const SERVER_NAME = 'temporal.internal.example.com';

/** Every option on: the overlay's options plus Temporal mTLS from a Secret, an API key file and the rest. */
const HELM_EVERYTHING = {
  ...HELM_AS_OVERLAY,
  image: { repository: OPTIONS.image, tag: OPTIONS.tag, pullPolicy: 'IfNotPresent', pullSecrets: ['registry-credentials'] },
  temporal: {
    address: OPTIONS.temporalAddress,
    namespace: OPTIONS.temporalNamespace,
    tls: { enabled: true, existingSecret: TLS_SECRET, serverName: SERVER_NAME },
    apiKey: { existingSecret: API_KEY_SECRET, key: API_KEY_KEY },
    createSearchAttributes: true,
  },
  devicePlugin: { ...HELM_AS_OVERLAY.devicePlugin, selectors: ['app=sriov-device-plugin'] },
  sweeper: { enabled: false, intervalSeconds: 900, graceSeconds: 7200, dryRun: true },
  controlWorker: {
    replicas: 3,
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
    tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
    extraEnv: [{ name: 'LOG_LEVEL', value: 'DEBUG' }],
  },
  watcher: { resources: { requests: { cpu: '50m', memory: '128Mi' } }, extraEnv: [{ name: 'RESYNC_SECONDS', value: '600' }] },
  nodeAgent: {
    nodeSelector: { 'kubernetes.io/os': 'linux', 'node.kubernetes.io/multi-eni': 'true' },
    tolerations: [{ operator: 'Exists' }],
    resources: { requests: { cpu: '20m', memory: '96Mi' } },
    dpdkEnableNoIommu: false,
  },
};

let tmp: string;
let kubeconfig: string;
const rendered: Record<'base' | 'overlay' | 'helmDefault' | 'helmAsBase' | 'helmAsOverlay' | 'helmEverything', K8sObject[]> = {} as never;

interface RunResult { stdout: string; stderr: string }

/** Runs a tool (no shell), optionally feeding stdin; rejects with its output on a non-zero exit. */
function run(cmd: string, args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited with ${code}\n${stderr}${stdout}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** helm with its config, cache and data in the test's folder, never the user's. */
function helm(args: string[]): Promise<RunResult> {
  return run(requireTool(HELM), args, undefined, {
    HELM_CONFIG_HOME: path.join(tmp, 'helm', 'config'),
    HELM_CACHE_HOME: path.join(tmp, 'helm', 'cache'),
    HELM_DATA_HOME: path.join(tmp, 'helm', 'data'),
  });
}

function kubectl(args: string[], input?: string): Promise<RunResult> {
  return run(requireTool(TOOL.kubectl), args, input);
}

function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(d.errors[0]!.message);
    return d.toJS() as K8sObject;
  }).filter((o) => o && o.kind);
}

async function kustomize(dir: string): Promise<{ text: string; objects: K8sObject[] }> {
  const { stdout } = await kubectl(['kustomize', dir]);
  return { text: stdout, objects: parseObjects(stdout) };
}

async function valuesFile(name: string, values: object): Promise<string> {
  const file = path.join(tmp, `${name}.values.yaml`);
  await writeFile(file, stringify(values));
  return file;
}

async function helmTemplate(name: string, values?: object): Promise<{ text: string; objects: K8sObject[] }> {
  const args = ['template', 'nodeeni', CHART, '--namespace', CONTROLLERS_NS];
  if (values) args.push('--values', await valuesFile(name, values));
  const { stdout } = await helm(args);
  return { text: stdout, objects: parseObjects(stdout) };
}

const texts: Partial<Record<keyof typeof rendered, string>> = {};

beforeAll(async () => {
  requireTool(HELM);
  kubeconfig = getBackends().kube.kubeconfigPath;
  await mkdir(path.join(PROJECT_ROOT, '.tmp'), { recursive: true });
  tmp = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'install-'));
  const overlayDir = path.join(tmp, 'overlay');
  await mkdir(overlayDir);
  for (const [file, content] of Object.entries(kustomizeOverlay(path.relative(overlayDir, DEPLOY)))) await writeFile(path.join(overlayDir, file), content);

  const jobs = {
    base: kustomize(DEPLOY),
    overlay: kustomize(overlayDir),
    helmDefault: helmTemplate('default'),
    helmAsBase: helmTemplate('as-base', HELM_AS_BASE),
    helmAsOverlay: helmTemplate('as-overlay', HELM_AS_OVERLAY),
    helmEverything: helmTemplate('everything', HELM_EVERYTHING),
  };
  for (const [k, p] of Object.entries(jobs)) {
    const r = await p;
    rendered[k as keyof typeof rendered] = r.objects;
    texts[k as keyof typeof rendered] = r.text;
  }

  // Namespaced objects need their namespace in a server dry run: the shipped
  // Namespaces for real (with their Pod Security labels, so PodSecurity
  // admission judges the pod templates), the device plugin's second one too.
  const namespaces = rendered.base.filter((o) => o.kind === 'Namespace');
  await kubectl(['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--field-manager=nodeeni-install-test', '-f', '-'], namespaces.map((o) => stringify(o)).join('---\n'));
  for (const ns of OPTIONS.devicePluginNamespaces) {
    await kubectl(['--kubeconfig', kubeconfig, 'create', 'namespace', ns]).catch((err: Error) => {
      if (!/AlreadyExists/.test(err.message)) throw err;
    });
  }
}, 240_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const id = (o: K8sObject) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** The object without what only Helm adds: its standard labels and the keep policy. */
function withoutHelmMetadata(o: K8sObject): K8sObject {
  const c = structuredClone(o);
  const strip = (m: Record<string, string> | undefined, drop: (k: string) => boolean) => {
    if (!m) return undefined;
    const kept = Object.fromEntries(Object.entries(m).filter(([k]) => !drop(k)));
    return Object.keys(kept).length ? kept : undefined;
  };
  const labels = strip(c.metadata.labels, (k) => k === 'helm.sh/chart' || k.startsWith('app.kubernetes.io/'));
  const annotations = strip(c.metadata.annotations, (k) => k === 'helm.sh/resource-policy');
  delete c.metadata.labels;
  delete c.metadata.annotations;
  if (labels) c.metadata.labels = labels;
  if (annotations) c.metadata.annotations = annotations;
  return c;
}

/**
 * The objects by kind, namespace and name, for comparison: without Helm's
 * metadata, and with each container's env in name order (a kustomize
 * strategic-merge patch moves the variables it replaces; none of ours refers
 * to another with $(VAR), so the order carries no meaning).
 */
function byId(objects: K8sObject[]): Record<string, K8sObject> {
  const out: Record<string, K8sObject> = {};
  for (const o of objects) {
    expect(out[id(o)], `${id(o)} rendered twice`).toBeUndefined();
    const c = withoutHelmMetadata(o);
    for (const container of c.spec?.template?.spec?.containers ?? []) {
      container.env?.sort((a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name));
    }
    out[id(o)] = c;
  }
  return out;
}

/** `scope group/resource verb [name]` per `namespace/serviceaccount`, from the roles and bindings. */
function rbacOf(objects: K8sObject[]): Record<string, string[]> {
  const roles = new Map<string, Array<{ apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] }>>();
  for (const o of objects) {
    if (o.kind === 'ClusterRole') roles.set(`ClusterRole//${o.metadata.name}`, o.rules ?? []);
    if (o.kind === 'Role') roles.set(`Role/${o.metadata.namespace}/${o.metadata.name}`, o.rules ?? []);
  }
  const out: Record<string, Set<string>> = {};
  for (const o of objects) if (o.kind === 'ServiceAccount') out[`${o.metadata.namespace}/${o.metadata.name}`] = new Set();
  for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    const ref = b.roleRef as { kind: string; name: string };
    const key = ref.kind === 'ClusterRole' ? `ClusterRole//${ref.name}` : `Role/${b.metadata.namespace}/${ref.name}`;
    const rules = roles.get(key);
    if (!rules) throw new Error(`${id(b)} refers to ${key}, which is not rendered`);
    const scope = b.kind === 'ClusterRoleBinding' ? 'cluster' : b.metadata.namespace!;
    for (const s of (b.subjects ?? []) as Array<{ kind: string; name: string; namespace?: string }>) {
      if (s.kind !== 'ServiceAccount') throw new Error(`${id(b)} binds a ${s.kind}`);
      const sa = `${s.namespace}/${s.name}`;
      if (!out[sa]) throw new Error(`${id(b)} binds ${sa}, which is not rendered`);
      for (const r of rules) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) {
        const line = `${scope} ${g || 'core'}/${res} ${v}`;
        if (r.resourceNames?.length) for (const n of r.resourceNames) out[sa]!.add(`${line} ${n}`);
        else out[sa]!.add(line);
      }
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}

function serviceAccounts(objects: K8sObject[]) {
  return Object.fromEntries(objects.filter((o) => o.kind === 'ServiceAccount').map((o) => {
    const c = withoutHelmMetadata(o);
    return [`${c.metadata.namespace}/${c.metadata.name}`, { annotations: c.metadata.annotations ?? {}, automountServiceAccountToken: c.automountServiceAccountToken }];
  }));
}

const workload = (objects: K8sObject[], name: string) => {
  const w = objects.find((o) => (o.kind === 'Deployment' || o.kind === 'DaemonSet') && o.metadata.name === name);
  if (!w) throw new Error(`no workload ${name}`);
  return w;
};

describe('rendering', () => {
  it('the chart ships deploy/crds verbatim', async () => {
    const [shipped, copy] = await Promise.all([
      readFile(path.join(DEPLOY, 'crds', 'nodeenis.networking.k8s.aws.yaml'), 'utf8'),
      readFile(path.join(CHART, 'files', 'nodeenis.networking.k8s.aws.yaml'), 'utf8'),
    ]);
    expect(copy, 'deploy/helm/nodeeni/files/ must be a copy of deploy/crds/nodeenis.networking.k8s.aws.yaml: cp deploy/crds/nodeenis.networking.k8s.aws.yaml deploy/helm/nodeeni/files/').toBe(shipped);
  });

  it('helm lint --strict passes with the default values and with every option on', async () => {
    for (const values of [undefined, HELM_EVERYTHING]) {
      const args = ['lint', CHART, '--strict', '--namespace', CONTROLLERS_NS];
      if (values) args.push('--values', await valuesFile('lint', values));
      const { stdout } = await helm(args);
      expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('the chart with the base\'s settings renders exactly the kustomize base, CRD and Namespaces included', () => {
    expect(byId(rendered.helmAsBase)).toEqual(byId(rendered.base));
    // The defaults differ only in the image tag (the chart's appVersion) and an explicit pull policy.
    const ids = (objs: K8sObject[]) => objs.map(id).sort();
    expect(ids(rendered.helmDefault)).toEqual(ids(rendered.base));
    for (const name of ['nodeeni-control-worker', 'nodeeni-watcher', 'nodeeni-node-agent']) {
      const [c] = workload(rendered.helmDefault, name).spec.template.spec.containers;
      expect(c.image, name).toBe('nodeeni:0.1.0');
      expect(c.imagePullPolicy, name).toBe('IfNotPresent');
    }
  });

  it('the chart with the overlay\'s options renders exactly what the kustomize overlay does', () => {
    expect(byId(rendered.helmAsOverlay)).toEqual(byId(rendered.overlay));
  });

  it('RBAC: every ServiceAccount gets the same rules from both install paths, with default and with every option', () => {
    expect(rbacOf(rendered.helmDefault)).toEqual(rbacOf(rendered.base));
    expect(serviceAccounts(rendered.helmDefault)).toEqual(serviceAccounts(rendered.base));
    const everything = rbacOf(rendered.helmEverything);
    expect(everything).toEqual(rbacOf(rendered.overlay));
    expect(serviceAccounts(rendered.helmEverything)).toEqual(serviceAccounts(rendered.overlay));
    console.log(`[install] RBAC with every option:\n${Object.entries(everything).map(([sa, rules]) => `  ${sa}:\n    ${rules.join('\n    ') || '(nothing)'}`).join('\n')}`);
    // What the options add, so the comparison is not between two empty sets.
    const cw = everything[`${CONTROLLERS_NS}/nodeeni-control-worker`]!;
    for (const ns of OPTIONS.devicePluginNamespaces) expect(cw).toContain(`${ns} core/pods delete`);
    expect(cw).toContain(`${OPTIONS.configMap.namespace} core/configmaps update ${OPTIONS.configMap.name}`);
    expect(cw).toContain('cluster core/pods watch');
    expect(everything[`${CONTROLLERS_NS}/nodeeni-watcher`]).toContain('cluster core/pods watch');
    expect(everything[`${AGENT_NS}/nodeeni-node-agent`]).toEqual([]);
    expect(serviceAccounts(rendered.helmEverything)[`${CONTROLLERS_NS}/nodeeni-control-worker`]!.annotations).toEqual({ 'eks.amazonaws.com/role-arn': OPTIONS.roleArn });
  });

  it('the controllers meet the restricted Pod Security Standard and the node agent has no token, in every rendering', () => {
    for (const [which, objects] of Object.entries(rendered)) {
      for (const name of ['nodeeni-control-worker', 'nodeeni-watcher']) {
        const w = workload(objects, name);
        const where = `${which} ${name}`;
        expect(w.metadata.namespace, where).toBe(CONTROLLERS_NS);
        const pod = w.spec.template.spec;
        expect(pod.securityContext.runAsNonRoot, where).toBe(true);
        expect(pod.securityContext.seccompProfile, where).toEqual({ type: 'RuntimeDefault' });
        expect(pod.hostNetwork ?? false, where).toBe(false);
        expect(pod.hostPID ?? false, where).toBe(false);
        expect((pod.volumes ?? []).filter((v: { hostPath?: unknown }) => v.hostPath), where).toEqual([]);
        for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
          expect(c.securityContext.allowPrivilegeEscalation, where).toBe(false);
          expect(c.securityContext.readOnlyRootFilesystem, where).toBe(true);
          expect(c.securityContext.capabilities, where).toEqual({ drop: ['ALL'] });
          expect(c.securityContext.privileged ?? false, where).toBe(false);
        }
      }
      const agent = workload(objects, 'nodeeni-node-agent');
      expect(agent.metadata.namespace, which).toBe(AGENT_NS);
      expect(agent.spec.template.spec.automountServiceAccountToken, which).toBe(false);
      expect(agent.spec.template.spec.serviceAccountName, which).toBe('nodeeni-node-agent');
      const sa = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'nodeeni-node-agent')!;
      expect(sa.automountServiceAccountToken, which).toBe(false);
      const nsLabels = (ns: string) => objects.find((o) => o.kind === 'Namespace' && o.metadata.name === ns)?.metadata.labels ?? {};
      expect(nsLabels(CONTROLLERS_NS)['pod-security.kubernetes.io/enforce'], which).toBe('restricted');
      expect(nsLabels(AGENT_NS)['pod-security.kubernetes.io/enforce'], which).toBe('privileged');
    }
  });

  it('the chart refuses bad values with a message naming the value', async () => {
    const cases: Array<[object, RegExp]> = [
      [{ temporl: {} }, /additional properties 'temporl' not allowed/],
      [{ temporal: { apiKey: { existingSecret: 'k' } } }, /temporal.apiKey.existingSecret needs temporal.tls.enabled=true/],
      [{ temporal: { tls: { enabled: true, secretKeys: { key: '' } } } }, /secretKeys.cert and .key/],
      [{ temporal: { address: 'https://temporal:7233' } }, /\/temporal\/address/],
      [{ aws: { roleArn: 'my-role' } }, /\/aws\/roleArn/],
      [{ devicePlugin: { namespaces: [] } }, /\/devicePlugin\/namespaces/],
      [{ controlWorker: { extraEnv: [{ name: 'AWS_REGION', value: 'x' }] } }, /\/controlWorker\/extraEnv\/0\/name/],
    ];
    for (const [values, message] of cases) {
      await expect(helmTemplate('bad', values), JSON.stringify(values)).rejects.toThrow(message);
    }
    await expect(helm(['template', 'nodeeni', CHART])).rejects.toThrow(/a namespace of its own, not "default"/);
  });
});

describe('the chart\'s environment, read by the components\' own configuration (workers/config.ts)', () => {
  const SCHEMAS: Record<string, z.ZodObject> = {
    'nodeeni-control-worker': controlConfigSchema as unknown as z.ZodObject,
    'nodeeni-watcher': watcherConfigSchema as unknown as z.ZodObject,
    'nodeeni-node-agent': nodeAgentConfigSchema as unknown as z.ZodObject,
  };

  /** A self-signed certificate and its key, as the Secret a cert-manager Certificate would write. */
  async function secretsData(): Promise<Record<string, Record<string, string>>> {
    const dir = await mkdtemp(path.join(tmp, 'pki-'));
    const key = path.join(dir, 'tls.key');
    const crt = path.join(dir, 'tls.crt');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${SERVER_NAME}`]);
    const cert = await readFile(crt, 'utf8');
    return {
      [TLS_SECRET]: { 'ca.crt': cert, 'tls.crt': cert, 'tls.key': await readFile(key, 'utf8') },
      [API_KEY_SECRET]: { [API_KEY_KEY]: 'a-temporal-cloud-api-key\n' },
    };
  }

  /**
   * The container's environment as the process sees it: Secret volumes
   * written out the way the kubelet projects them (only the listed items),
   * their mount paths mapped to those folders, the node name filled in.
   */
  async function containerEnv(objects: K8sObject[], name: string, secrets: Record<string, Record<string, string>>): Promise<Record<string, string>> {
    const pod = workload(objects, name).spec.template.spec;
    const [c] = pod.containers;
    const mapped: Array<[string, string]> = [];
    for (const m of (c.volumeMounts ?? []) as Array<{ name: string; mountPath: string }>) {
      const vol = (pod.volumes ?? []).find((v: { name: string }) => v.name === m.name);
      if (!vol?.secret) continue;
      const dir = await mkdtemp(path.join(tmp, `${name}-${m.name}-`));
      for (const item of vol.secret.items as Array<{ key: string; path: string }>) {
        const data = secrets[vol.secret.secretName]?.[item.key];
        if (data === undefined) throw new Error(`${name}: Secret ${vol.secret.secretName} has no key ${item.key}`);
        await writeFile(path.join(dir, item.path), data, { mode: vol.secret.defaultMode ?? 0o644 });
      }
      mapped.push([m.mountPath, dir]);
    }
    const env: Record<string, string> = {};
    for (const e of c.env as Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>) {
      expect(env[e.name], `${name} sets ${e.name} twice`).toBeUndefined();
      if (e.valueFrom) {
        expect(e.valueFrom.fieldRef?.fieldPath, `${name} ${e.name}`).toBe('spec.nodeName');
        env[e.name] = 'ip-10-0-1-23.eu-west-1.compute.internal';
        continue;
      }
      let v = e.value ?? '';
      for (const [mountPath, dir] of mapped) if (v.startsWith(`${mountPath}/`)) v = dir + v.slice(mountPath.length);
      env[e.name] = v;
    }
    // The host's / is mounted at HOST_ROOT in the real pod.
    if (env.HOST_ROOT) env.HOST_ROOT = tmp;
    return env;
  }

  for (const which of ['helmDefault', 'helmEverything', 'base', 'overlay'] as const) {
    it(`${which}: every variable set is one the component reads, and the configuration loads`, async () => {
      const secrets = await secretsData();
      for (const [name, schema] of Object.entries(SCHEMAS)) {
        const env = await containerEnv(rendered[which], name, secrets);
        const known = new Set(Object.keys(schema.shape));
        expect(Object.keys(env).filter((k) => !known.has(k)), `${which} ${name}: variables the component does not read`).toEqual([]);
        const config = loadConfig(schema, env) as Record<string, unknown> & Parameters<typeof temporalTlsEnabled>[0];
        expect(config.TEMPORAL_ADDRESS).toBe(which === 'helmEverything' || which === 'overlay' ? OPTIONS.temporalAddress : 'temporal-frontend.temporal:7233');
        if (which !== 'helmEverything') {
          expect(temporalTlsEnabled(config), `${which} ${name}`).toBe(false);
          continue;
        }
        expect(temporalTlsEnabled(config), name).toBe(true);
        expect(config.TEMPORAL_TLS_SERVER_NAME, name).toBe(SERVER_NAME);
        expect(await readFile(config.TEMPORAL_TLS_SERVER_CA_CERT_PATH!, 'utf8'), name).toBe(secrets[TLS_SECRET]!['ca.crt']);
        expect(await readFile(config.TEMPORAL_TLS_CLIENT_CERT_PATH!, 'utf8'), name).toBe(secrets[TLS_SECRET]!['tls.crt']);
        expect(await readFile(config.TEMPORAL_TLS_CLIENT_KEY_PATH!, 'utf8'), name).toBe(secrets[TLS_SECRET]!['tls.key']);
        expect((await readFile(config.TEMPORAL_API_KEY_FILE!, 'utf8')).trim(), name).toBe('a-temporal-cloud-api-key');
      }
    });
  }

  it('with every option on, the values reach the pods', () => {
    const objects = rendered.helmEverything;
    const cw = workload(objects, 'nodeeni-control-worker');
    const env = (w: K8sObject) => Object.fromEntries(w.spec.template.spec.containers[0].env.filter((e: { value?: string }) => e.value !== undefined).map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(cw.spec.replicas).toBe(3);
    expect(env(cw)).toMatchObject({
      AWS_REGION: OPTIONS.region,
      DEVICE_PLUGIN_NAMESPACES: OPTIONS.devicePluginNamespaces.join(','),
      DEVICE_PLUGIN_SELECTORS: 'app=sriov-device-plugin',
      DEVICE_PLUGIN_CONFIGMAP: `${OPTIONS.configMap.namespace}/${OPTIONS.configMap.name}`,
      TEMPORAL_CREATE_SEARCH_ATTRIBUTES: 'true',
      LOG_LEVEL: 'DEBUG',
      CLUSTER_NAME: OPTIONS.clusterName,
      SWEEP_ENABLED: 'false',
      SWEEP_INTERVAL_SECONDS: '900',
      SWEEP_GRACE_SECONDS: '7200',
      SWEEP_DRY_RUN: 'true',
    });
    expect(cw.spec.template.spec.containers[0].resources).toEqual(HELM_EVERYTHING.controlWorker.resources);
    expect(cw.spec.template.spec.tolerations).toEqual(HELM_EVERYTHING.controlWorker.tolerations);
    expect(cw.spec.template.spec.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
    const watcher = workload(objects, 'nodeeni-watcher');
    expect(env(watcher)).toMatchObject({ CLUSTER_NAME: OPTIONS.clusterName, RESCTRL_ENABLED: 'true', RESYNC_SECONDS: '600' });
    const agent = workload(objects, 'nodeeni-node-agent');
    expect(agent.spec.template.spec.nodeSelector).toEqual(HELM_EVERYTHING.nodeAgent.nodeSelector);
    expect(agent.spec.template.spec.tolerations).toEqual(HELM_EVERYTHING.nodeAgent.tolerations);
    expect(env(agent)).toMatchObject({ DPDK_ENABLE_NOIOMMU: 'false' });
    for (const w of [cw, watcher, agent]) {
      expect(w.spec.template.spec.containers[0].image).toBe(`${OPTIONS.image}:${OPTIONS.tag}`);
      // Secrets are mounted read-only and whole folders (not subPath), so a rotated key reaches the pod.
      for (const m of w.spec.template.spec.containers[0].volumeMounts.filter((v: { name: string }) => v.name.startsWith('temporal-'))) {
        expect(m.readOnly, `${w.metadata.name} ${m.name}`).toBe(true);
        expect(m.subPath, `${w.metadata.name} ${m.name}`).toBeUndefined();
      }
    }
    const cm = objects.find((o) => o.kind === 'ConfigMap')!;
    expect(`${cm.metadata.namespace}/${cm.metadata.name}`).toBe(`${OPTIONS.configMap.namespace}/${OPTIONS.configMap.name}`);
    expect(cm.data).toBeUndefined();
  });
});

describe('kubectl apply --dry-run=server on the real API server', () => {
  for (const which of ['base', 'overlay', 'helmDefault', 'helmEverything'] as const) {
    it(`${which}: every object is accepted, and PodSecurity admission has nothing to say`, async () => {
      const { stdout, stderr } = await kubectl(['--kubeconfig', kubeconfig, 'apply', '--dry-run=server', '--validate=strict', '-f', '-'], texts[which]);
      const applied = stdout.split('\n').filter((l) => /\(server dry run\)$/.test(l));
      expect(applied.length, stdout).toBe(rendered[which].length);
      expect(stderr, 'PodSecurity warnings').not.toMatch(/PodSecurity/);
      expect(stderr.split('\n').filter((l) => l && !/missing the kubectl.kubernetes.io\/last-applied-configuration annotation/.test(l) && !/patched automatically/.test(l)), 'other warnings').toEqual([]);
    });
  }

  it('the check can fail: a controller pod that breaks `restricted` is reported by PodSecurity admission', async () => {
    const bad = structuredClone(workload(rendered.base, 'nodeeni-watcher'));
    bad.metadata.name = 'nodeeni-install-test-negative';
    delete bad.spec.template.spec.securityContext.seccompProfile;
    bad.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation = true;
    const { stderr } = await kubectl(['--kubeconfig', kubeconfig, 'apply', '--dry-run=server', '-f', '-'], stringify(bad));
    expect(stderr).toMatch(/would violate PodSecurity "restricted:latest"/);
    expect(stderr).toMatch(/allowPrivilegeEscalation != false/);
    expect(stderr).toMatch(/seccompProfile/);
  });
});

describe('helm itself', () => {
  it('is the version tools/helm/go.mod pins', async () => {
    const pinned = (await readFile(path.join(PROJECT_ROOT, 'tools', 'helm', 'go.mod'), 'utf8')).match(/^\s*helm\.sh\/helm\/v4 (v\S+)/m)?.[1];
    expect(pinned).toBeDefined();
    const { stdout } = await helm(['version', '--template', '{{.Version}}']);
    expect(stdout.trim()).toBe(pinned);
    expect(existsSync(path.join(PROJECT_ROOT, 'tools', 'helm', 'build.sh'))).toBe(true);
  });
});

describe('the Temporal dynamic config for the paced queues (deploy/temporal)', () => {
  it('gives each paced EC2 task queue, and only those, one read and one write partition', async () => {
    const file = await readFile(path.join(DEPLOY, 'temporal', 'dynamicconfig-paced-queues.yaml'), 'utf8');
    const config = parseAllDocuments(file)[0]!.toJS() as Record<string, { value: unknown; constraints: { namespace: string; taskQueueName: string } }[]>;
    const paced = EC2_APIS.map((api) => ec2TaskQueue(DEFAULT_CONTROL_TASK_QUEUE, api)).sort();
    expect(Object.keys(config).sort()).toEqual(['matching.numTaskqueueReadPartitions', 'matching.numTaskqueueWritePartitions']);
    for (const entries of Object.values(config)) {
      expect(entries.map((e) => e.constraints.taskQueueName).sort()).toEqual(paced);
      expect(new Set(entries.map((e) => e.value))).toEqual(new Set([1]));
      expect(new Set(entries.map((e) => e.constraints.namespace))).toEqual(new Set(['default']));
    }
  });
});
