// Kubernetes activity: restart the SR-IOV device plugin on one node, the only
// way it picks up a new config (it reads config.json once at start and never
// reloads), and verify the result. The original deleted the pod and returned
// at once; here we wait for a replacement pod (new UID) to be Ready and for
// node.status.allocatable to show what the config promises.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { httpCode, toKubeFailure } from './errors.js';
import { parseResourceName } from '../../common/device-plugin.js';

// Where device plugin pods live in the common deployments: the defaults live with the other device-plugin facts that need no Kubernetes client (the node agent's config reads them).
export { DEFAULT_DEVICE_PLUGIN_NAMESPACES, DEFAULT_DEVICE_PLUGIN_SELECTORS } from '../../common/device-plugin.js';

export const DEVICE_PLUGIN_RESTART_FAILURES = {
  notReady: 'DevicePluginNotReady',
  invalidInput: 'InvalidDevicePluginRestartInput',
} as const;

export interface RestartDevicePluginInput {
  nodeName: string;
  namespaces: string[];
  labelSelectors: string[];
  /** Resources that must show in node allocatable with this count; 0 = absent or 0. */
  expect: Record<string, number>;
  timeoutMs?: number;
}

export interface RestartDevicePluginResult {
  podFound: boolean;
  restarted: boolean;
  namespace?: string;
  oldPod?: string;
  newPod?: string;
  /** node.status.allocatable when the activity finished. */
  allocatable: Record<string, string>;
  message: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const MAX_TIMEOUT_MS = 3_600_000;
const POLL_MS = 500;
/** How long a retried attempt waits for a replacement an earlier attempt caused. */
const RETRY_APPEAR_MS = 10_000;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, DEVICE_PLUGIN_RESTART_FAILURES.invalidInput);
}

/** Equality-based selector `k=v[,k2=v2]` (`==` accepted), normalized to `k=v,k2=v2`. */
export function parseEqualitySelector(selector: string): string {
  if (typeof selector !== 'string' || selector.trim() === '') throw invalid(`label selector ${JSON.stringify(selector)} is empty`);
  return selector
    .split(',')
    .map((req) => {
      const m = /^\s*([^=!\s]+)\s*==?\s*([^=\s]*)\s*$/.exec(req);
      if (!m) throw invalid(`label selector ${JSON.stringify(selector)}: ${JSON.stringify(req)} is not key=value`);
      const [, key, value] = m as unknown as [string, string, string];
      const slash = key.lastIndexOf('/');
      const prefix = slash < 0 ? undefined : key.slice(0, slash);
      const name = key.slice(slash + 1);
      if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) throw invalid(`label selector ${JSON.stringify(selector)}: key prefix ${JSON.stringify(prefix)} is not a DNS subdomain`);
      if (name.length > 63 || !LABEL_NAME.test(name)) throw invalid(`label selector ${JSON.stringify(selector)}: key ${JSON.stringify(key)} is not a label key`);
      if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) throw invalid(`label selector ${JSON.stringify(selector)}: value ${JSON.stringify(value)} is not a label value`);
      return `${key}=${value}`;
    })
    .join(',');
}

function validate(input: RestartDevicePluginInput): { nodeName: string; namespaces: string[]; selectors: string[]; expect: Record<string, number>; timeoutMs: number } {
  const { nodeName } = input;
  if (typeof nodeName !== 'string' || nodeName.length > 253 || !DNS_SUBDOMAIN.test(nodeName)) throw invalid(`node name ${JSON.stringify(nodeName)} is not a DNS subdomain`);
  if (!Array.isArray(input.namespaces) || input.namespaces.length === 0) throw invalid('namespaces must list at least one namespace');
  for (const ns of input.namespaces) if (typeof ns !== 'string' || ns.length > 63 || !DNS_LABEL.test(ns)) throw invalid(`namespace ${JSON.stringify(ns)} is not a DNS label`);
  if (!Array.isArray(input.labelSelectors) || input.labelSelectors.length === 0) throw invalid('labelSelectors must list at least one selector');
  const selectors = input.labelSelectors.map(parseEqualitySelector);
  const expect: Record<string, number> = {};
  for (const [resource, count] of Object.entries(input.expect ?? {})) {
    if (!resource.includes('/')) throw invalid(`expected resource ${JSON.stringify(resource)} must be prefix/name`);
    try {
      parseResourceName(resource);
    } catch (err) {
      throw invalid(`expected resource: ${(err as Error).message}`);
    }
    if (!Number.isSafeInteger(count) || count < 0) throw invalid(`expected count of ${resource} must be a non-negative integer, got ${String(count)}`);
    expect[resource] = count;
  }
  const timeoutMs = input.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) throw invalid(`timeoutMs must be in (0, ${MAX_TIMEOUT_MS}], got ${String(timeoutMs)}`);
  return { nodeName, namespaces: [...new Set(input.namespaces)], selectors: [...new Set(selectors)], expect, timeoutMs };
}

/** Extended resources are integers; anything else never matches a device count. */
function quantity(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  return /^\d+$/.test(v) ? Number(v) : Number.NaN;
}

/** Differences between allocatable and what the config promises, for messages; [] when they agree. */
export function allocatableMismatches(allocatable: Record<string, string>, expect: Record<string, number>): string[] {
  const out: string[] = [];
  for (const [resource, want] of Object.entries(expect).sort(([a], [b]) => a.localeCompare(b))) {
    const have = quantity(allocatable[resource]);
    const ok = want === 0 ? have === undefined || have === 0 : have === want;
    if (!ok) out.push(`${resource} is ${allocatable[resource] ?? 'absent'}, want ${want === 0 ? '0 or absent' : want}`);
  }
  return out;
}

function isReady(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createDevicePluginKubeActivities({ kc, pollMs = POLL_MS }: { kc: KubeConfig; pollMs?: number }) {
  const core = kc.makeApiClient(CoreV1Api);

  async function listPluginPods(namespace: string, selector: string, nodeName: string): Promise<V1Pod[]> {
    try {
      return (await core.listNamespacedPod({ namespace, labelSelector: selector, fieldSelector: `spec.nodeName=${nodeName}` })).items;
    } catch (err) {
      throw toKubeFailure(err, `list pods ${selector} in ${namespace} on node ${nodeName}`);
    }
  }

  /** The first namespace × selector (in the caller's order) with a plugin pod on the node. */
  async function findPlugin(nodeName: string, namespaces: string[], selectors: string[]): Promise<{ namespace: string; selector: string; pods: V1Pod[] } | undefined> {
    const combos = namespaces.flatMap((namespace) => selectors.map((selector) => ({ namespace, selector })));
    const found = await Promise.all(combos.map(async (c) => ({ ...c, pods: await listPluginPods(c.namespace, c.selector, nodeName) })));
    return found.find((f) => f.pods.length > 0);
  }

  /** undefined when the node does not exist. */
  async function readAllocatable(nodeName: string): Promise<Record<string, string> | undefined> {
    try {
      return (await core.readNodeStatus({ name: nodeName })).status?.allocatable ?? {};
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw toKubeFailure(err, `read node ${nodeName}`);
    }
  }

  /** Grace 0, guarded by UID: a pod that is already gone or replaced is fine. */
  async function deletePod(pod: V1Pod): Promise<void> {
    const { name, namespace, uid } = pod.metadata as { name: string; namespace: string; uid: string };
    try {
      await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (err) {
      if (httpCode(err) === 404 || httpCode(err) === 409) return;
      throw toKubeFailure(err, `delete device plugin pod ${namespace}/${name}`);
    }
  }

  return {
    /**
     * Deletes the node's device plugin pod and waits until its replacement is
     * Ready and allocatable matches `expect`. No plugin pod is an answer
     * (podFound false), not an error: the config applies when one starts.
     */
    async restartDevicePlugin(input: RestartDevicePluginInput): Promise<RestartDevicePluginResult> {
      const ctx = Context.current();
      const { nodeName, namespaces, selectors, expect, timeoutMs } = validate(input);
      const deadline = Date.now() + timeoutMs;

      let plugin = await findPlugin(nodeName, namespaces, selectors);
      // A retry may land between an earlier attempt's delete and the replacement's creation.
      const appearBy = Math.min(deadline, Date.now() + RETRY_APPEAR_MS);
      while (!plugin && ctx.info.attempt > 1 && Date.now() < appearBy) {
        ctx.heartbeat({ waitingFor: 'a device plugin pod to reappear' });
        await Promise.race([sleep(pollMs), ctx.cancelled]);
        plugin = await findPlugin(nodeName, namespaces, selectors);
      }
      if (!plugin) {
        const allocatable = await readAllocatable(nodeName);
        const message =
          allocatable === undefined
            ? `node ${nodeName} does not exist; no device plugin to restart`
            : `no SR-IOV device plugin pod on node ${nodeName} (searched namespaces ${namespaces.join(', ')} with selectors ${selectors.join(' | ')}); the config takes effect when the plugin starts`;
        return { podFound: false, restarted: false, allocatable: allocatable ?? {}, message };
      }
      const { namespace, selector } = plugin;

      // A retry after an earlier attempt already restarted the plugin must not restart it again.
      if (ctx.info.attempt > 1) {
        const ready = plugin.pods.find(isReady);
        const allocatable = await readAllocatable(nodeName);
        if (ready && allocatable && allocatableMismatches(allocatable, expect).length === 0) {
          const newPod = ready.metadata?.name;
          return { podFound: true, restarted: true, namespace, newPod, allocatable, message: `device plugin ${namespace}/${newPod} on node ${nodeName} is Ready and advertises the config (restarted by an earlier attempt)` };
        }
      }

      const old = plugin.pods.filter((p) => !p.metadata?.deletionTimestamp);
      const gone = new Set(plugin.pods.map((p) => p.metadata?.uid));
      for (const pod of old) await deletePod(pod);
      const oldPod = (old[0] ?? plugin.pods[0])?.metadata?.name;

      for (;;) {
        const pods = await listPluginPods(namespace, selector, nodeName);
        const fresh = pods.find((p) => !gone.has(p.metadata?.uid) && isReady(p));
        const allocatable = await readAllocatable(nodeName);
        if (allocatable === undefined) throw ApplicationFailure.nonRetryable(`node ${nodeName} disappeared while restarting its device plugin`, 'KubeHTTP404');
        const mismatches = allocatableMismatches(allocatable, expect);
        if (fresh && mismatches.length === 0) {
          const newPod = fresh.metadata?.name;
          return { podFound: true, restarted: true, namespace, oldPod, newPod, allocatable, message: `device plugin ${namespace}/${oldPod} on node ${nodeName} replaced by ${newPod}, which is Ready and advertises the config` };
        }
        const waitingFor = fresh ? `allocatable to match (${mismatches.join('; ')})` : `a Ready device plugin pod ${selector} in ${namespace} to replace ${oldPod}`;
        if (Date.now() >= deadline) {
          throw ApplicationFailure.create({
            type: DEVICE_PLUGIN_RESTART_FAILURES.notReady,
            message: `node ${nodeName}: waited ${timeoutMs} ms for ${waitingFor}`,
            details: [{ nodeName, namespace, oldPod, newPod: fresh?.metadata?.name, mismatches }],
          });
        }
        ctx.heartbeat({ waitingFor });
        await Promise.race([sleep(pollMs), ctx.cancelled]);
      }
    },
  };
}

export type DevicePluginKubeActivities = ReturnType<typeof createDevicePluginKubeActivities>;
