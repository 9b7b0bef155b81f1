// The shipped deployment, installed on a sandbox or test API server the way a
// cluster admin would (kustomize render of an overlay of deploy/, then
// server-side apply), and credentials of its ServiceAccounts (TokenRequest),
// so the components talk to Kubernetes with exactly the rights the manifests
// grant, never as an administrator.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PooledKubeConfig } from '../activities/kube/pooled-kube-config.js';
import { CoreV1Api, type KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { TOOL } from './backends/tools.js';

const run = promisify(execFile);

/** Where the control worker and the watcher run, and their ServiceAccounts. */
export const INSTALL_NAMESPACE = 'nodeeni-system';
export type Component = 'nodeeni-control-worker' | 'nodeeni-watcher';

/** What the API server gets: identities and their rights (the workloads run as test processes instead). */
const INSTALLED_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ConfigMap']);

/** `kubectl kustomize` of a kustomization directory. */
export async function renderKustomize(dir: string): Promise<KubernetesObject[]> {
  const { stdout } = await run(TOOL.kubectl, ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout).map((d) => d.toJS() as KubernetesObject).filter((o) => o && o.kind);
}

const installed = new Map<string, Promise<void>>();

/** Applies the RBAC of a kustomization (idempotent; once per API server, overlay and process). */
export function installDeployment(admin: KubeConfig, overlay: string): Promise<void> {
  const key = `${admin.getCurrentCluster()?.server ?? ''}|${overlay}`;
  let p = installed.get(key);
  if (!p) {
    p = apply(admin, overlay);
    installed.set(key, p);
    p.catch(() => installed.delete(key));
  }
  return p;
}

async function apply(admin: KubeConfig, overlay: string): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(admin);
  const objects = (await renderKustomize(overlay)).filter((o) => INSTALLED_KINDS.has(o.kind!));
  // Namespaces the Roles go to (the device plugin's) exist in a real cluster; make sure they do here.
  const namespaces = new Set(objects.map((o) => o.metadata?.namespace).filter((n): n is string => !!n));
  const declared = new Set(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata!.name!));
  const extra = [...namespaces].filter((n) => !declared.has(n)).map((name): KubernetesObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }));
  const ordered = [...objects.filter((o) => o.kind === 'Namespace'), ...extra, ...objects.filter((o) => o.kind !== 'Namespace')];
  for (const o of ordered) {
    await api.patch(o, undefined, undefined, 'nodeeni-tests', true, PatchStrategy.ServerSideApply);
  }
}

/** A kubeconfig that authenticates as one of the shipped ServiceAccounts, with a token from the TokenRequest API. */
export function serviceAccountKubeConfig(admin: KubeConfig, component: Component, expirationSeconds?: number): Promise<KubeConfig> {
  return tokenKubeConfig(admin, component, INSTALL_NAMESPACE, expirationSeconds);
}

/** A kubeconfig with a fresh token of any ServiceAccount. */
export async function tokenKubeConfig(admin: KubeConfig, name: string, namespace: string, expirationSeconds = 4 * 3600): Promise<KubeConfig> {
  const core = admin.makeApiClient(CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const cluster = admin.getCurrentCluster()!;
  // As the components run: keeping their connections (activities/kube/pooled-kube-config.ts).
  const kc = new PooledKubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: cluster.name, server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name, token: res.status!.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return kc;
}

/** The same credentials as a kubeconfig file, for components started as processes. */
export async function serviceAccountKubeConfigFile(admin: KubeConfig, component: Component, dir: string, expirationSeconds?: number): Promise<string> {
  const kc = await serviceAccountKubeConfig(admin, component, expirationSeconds);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${component}.kubeconfig`);
  await writeFile(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}
