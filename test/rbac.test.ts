// What each shipped ServiceAccount may do, read back from the real API server
// (SelfSubjectRulesReview with the account's own token) and compared with the
// exact list the code needs: anything more fails, and so does anything less.
// Then SubjectAccessReviews of what must stay forbidden (the paths to
// cluster-admin and to other tenants' data).
import { AuthorizationV1Api, CoreV1Api, type KubeConfig, type V1ResourceRule } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { installDeployment, INSTALL_NAMESPACE, tokenKubeConfig } from '../sandbox/kube-install.js';
import { getBackends, kubeConfigFor } from './support/backends.js';
import { TEST_DEVICE_PLUGIN_OPTIONS, TEST_INSTALL_OVERLAY } from './support/cluster.js';

let admin: KubeConfig;
const OTHER_NS = 'tenant-a';
const DP_NAMESPACES = TEST_DEVICE_PLUGIN_OPTIONS.namespaces;
const CM = TEST_DEVICE_PLUGIN_OPTIONS.configMap!;

beforeAll(async () => {
  admin = kubeConfigFor(getBackends());
  await installDeployment(admin, TEST_INSTALL_OVERLAY);
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: OTHER_NS } } }).catch(() => undefined);
  // An account bound to nothing: what every authenticated caller may do on this server (self reviews, discovery, trust bundles).
  await core.createNamespacedServiceAccount({ namespace: OTHER_NS, body: { metadata: { name: BASELINE } } }).catch(() => undefined);
});

const BASELINE = 'rbac-baseline';
const baselines = new Map<string, Set<string>>();
async function baseline(namespace: string): Promise<Set<string>> {
  if (!baselines.has(namespace)) baselines.set(namespace, new Set(await rawRules(BASELINE, OTHER_NS, namespace)));
  return baselines.get(namespace)!;
}

/** `group/resource verb [name]` lines. */
function flatten(rules: V1ResourceRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) {
      const base = `${g || 'core'}/${res} ${v}`;
      if (r.resourceNames?.length) for (const n of r.resourceNames) out.add(`${base} ${n}`);
      else out.add(base);
    }
  }
  return [...out].sort();
}

async function rawRules(account: string, accountNamespace: string, namespace: string): Promise<string[]> {
  const kc = await tokenKubeConfig(admin, account, accountNamespace);
  const res = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectRulesReview({ body: { spec: { namespace } } });
  expect(res.status?.incomplete).toBe(false);
  return flatten(res.status?.resourceRules ?? []);
}

/** What the account may do in `namespace` beyond what any authenticated caller may. */
async function rulesOf(account: string, namespace: string, accountNamespace = INSTALL_NAMESPACE): Promise<string[]> {
  const base = await baseline(namespace);
  return (await rawRules(account, accountNamespace, namespace)).filter((r) => !base.has(r));
}

const expand = (resource: string, verbs: string[], name?: string) => verbs.map((v) => `${resource} ${v}${name ? ` ${name}` : ''}`);

const WATCHER_CLUSTER = [
  ...expand('networking.k8s.aws/nodeenis', ['get', 'list', 'watch', 'patch']),
  ...expand('core/nodes', ['get', 'list', 'watch']),
  // components/resctrl: the pod informer.
  ...expand('core/pods', ['get', 'list', 'watch']),
];
const CONTROL_CLUSTER = [
  // list: the leaked-ENI sweeper's ownership check.
  ...expand('networking.k8s.aws/nodeenis', ['get', 'list', 'patch']),
  ...expand('networking.k8s.aws/nodeenis/status', ['get', 'patch']),
  ...expand('core/nodes', ['get', 'list']),
  ...expand('core/nodes/status', ['get']),
  ...expand('core/events', ['create']),
  // components/resctrl: the pods of a node, and Events on them.
  ...expand('core/pods', ['get', 'list', 'watch']),
];
const CONTROL_IN_PLUGIN_NAMESPACE = expand('core/pods', ['delete']);
const CONTROL_ON_MIRROR = expand('core/configmaps', ['get', 'update'], CM.name);

const sorted = (xs: string[]) => [...new Set(xs)].sort();

describe('what each ServiceAccount may do (SelfSubjectRulesReview)', () => {
  it('the watcher: NodeENIs and Nodes (read, finalizer patch), pods read for resctrl; nothing namespaced', async () => {
    for (const ns of [OTHER_NS, 'kube-system', INSTALL_NAMESPACE]) {
      const rules = await rulesOf('nodeeni-watcher', ns);
      if (ns === OTHER_NS) console.log(`[rbac] nodeeni-watcher:\n  ${rules.join('\n  ')}`);
      expect(rules, `watcher in ${ns}`).toEqual(sorted(WATCHER_CLUSTER));
    }
  });

  it('the control worker: cluster-wide reads and status, pod delete only in the device-plugin namespaces, one ConfigMap', async () => {
    for (const ns of [OTHER_NS, INSTALL_NAMESPACE, ...DP_NAMESPACES]) {
      const rules = await rulesOf('nodeeni-control-worker', ns);
      const want = [...CONTROL_CLUSTER, ...(DP_NAMESPACES.includes(ns) ? CONTROL_IN_PLUGIN_NAMESPACE : []), ...(ns === CM.namespace ? CONTROL_ON_MIRROR : [])];
      console.log(`[rbac] nodeeni-control-worker in ${ns}:\n  ${rules.join('\n  ')}`);
      expect(rules, `control worker in ${ns}`).toEqual(sorted(want));
    }
  });

  it('the node agent mounts no token and is bound to nothing', async () => {
    const docs = parseAllDocuments(await readFile(path.join(PROJECT_ROOT, 'deploy', 'manifests', '30-node-agent.yaml'), 'utf8')).map((d) => d.toJS());
    const ds = docs.find((d) => d?.kind === 'DaemonSet');
    expect(ds.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(ds.spec.template.spec.serviceAccountName).toBe('nodeeni-node-agent');
    const sa = parseAllDocuments(await readFile(path.join(PROJECT_ROOT, 'deploy', 'manifests', '10-rbac.yaml'), 'utf8')).map((d) => d.toJS()).find((d) => d?.kind === 'ServiceAccount' && d.metadata.name === 'nodeeni-node-agent');
    expect(sa.automountServiceAccountToken).toBe(false);
    for (const ns of [OTHER_NS, 'kube-system']) expect(await rulesOf('nodeeni-node-agent', ns, 'nodeeni-node-agent'), `node agent in ${ns}`).toEqual([]);
    const authz = admin.makeApiClient(AuthorizationV1Api);
    const user = 'system:serviceaccount:nodeeni-node-agent:nodeeni-node-agent';
    for (const [resource, verb] of [['nodes', 'get'], ['pods', 'list'], ['nodeenis', 'get']] as const) {
      const res = await authz.createSubjectAccessReview({ body: { spec: { user, groups: ['system:serviceaccounts'], resourceAttributes: { resource, verb, group: resource === 'nodeenis' ? 'networking.k8s.aws' : '' } } } });
      expect(res.status?.allowed, `node agent ${verb} ${resource}`).toBe(false);
    }
  });
});

describe('paths that must stay closed (SubjectAccessReview)', () => {
  const forbidden: Array<{ what: string; ns?: string; group?: string; resource: string; verb: string; name?: string; subresource?: string }> = [
    { what: 'read secrets', ns: 'kube-system', resource: 'secrets', verb: 'get' },
    { what: 'list secrets cluster-wide', resource: 'secrets', verb: 'list' },
    { what: 'replace aws-auth (EKS cluster-admin)', ns: 'kube-system', resource: 'configmaps', verb: 'update', name: 'aws-auth' },
    { what: 'create ConfigMaps', ns: CM.namespace, resource: 'configmaps', verb: 'create' },
    { what: 'exec into pods', ns: 'kube-system', resource: 'pods', verb: 'create', subresource: 'exec' },
    { what: 'bind roles cluster-wide', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', verb: 'create' },
    { what: 'escalate roles', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'escalate' },
    { what: 'delete pods outside the device-plugin namespaces', ns: OTHER_NS, resource: 'pods', verb: 'delete' },
    { what: 'delete pods in its own namespace', ns: INSTALL_NAMESPACE, resource: 'pods', verb: 'delete' },
    { what: 'patch nodes', resource: 'nodes', verb: 'patch' },
    { what: 'delete NodeENIs', group: 'networking.k8s.aws', resource: 'nodeenis', verb: 'delete' },
    { what: 'update NodeENIs', group: 'networking.k8s.aws', resource: 'nodeenis', verb: 'update' },
    { what: 'patch events', ns: 'default', resource: 'events', verb: 'patch' },
    { what: 'impersonate', resource: 'users', verb: 'impersonate' },
    { what: 'mint tokens', ns: INSTALL_NAMESPACE, resource: 'serviceaccounts', verb: 'create', subresource: 'token' },
  ];

  for (const component of ['nodeeni-watcher', 'nodeeni-control-worker'] as const) {
    it(`${component} cannot ${forbidden.map((f) => f.what).join(', ')}`, async () => {
      const authz = admin.makeApiClient(AuthorizationV1Api);
      const user = `system:serviceaccount:${INSTALL_NAMESPACE}:${component}`;
      const allowed: string[] = [];
      for (const f of forbidden) {
        const res = await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${INSTALL_NAMESPACE}`, 'system:authenticated'],
              resourceAttributes: { namespace: f.ns, group: f.group ?? '', resource: f.resource, verb: f.verb, name: f.name, subresource: f.subresource },
            },
          },
        });
        if (res.status?.allowed) allowed.push(f.what);
      }
      expect(allowed).toEqual([]);
    });
  }

  it('the review can see a right: the control worker may delete plugin pods in kube-system', async () => {
    const authz = admin.makeApiClient(AuthorizationV1Api);
    const res = await authz.createSubjectAccessReview({
      body: { spec: { user: `system:serviceaccount:${INSTALL_NAMESPACE}:nodeeni-control-worker`, groups: ['system:serviceaccounts'], resourceAttributes: { namespace: 'kube-system', resource: 'pods', verb: 'delete' } } },
    });
    expect(res.status?.allowed).toBe(true);
  });
});
