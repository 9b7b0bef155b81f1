// A stand-in for the kubelet and the DaemonSet controller of the SR-IOV device
// plugin on one node, against the real kube-apiserver (which runs no
// controllers and no kubelet here). It keeps one plugin pod on the node,
// "starts" each new pod the way the real plugin starts (reads config.json from
// the host once, discovers the host's PCI devices once, exits on a bad or empty
// config), reports the pod Ready or crash-looping through pods/status, and
// publishes the pools in node capacity/allocatable through nodes/status, as the
// kubelet's device manager does: a resource no longer served stays at "0".
import { ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { DEFAULT_DEVICE_PLUGIN_CONFIG_PATH, DEFAULT_RESOURCE_PREFIX } from '../common/device-plugin.js';
import { isErrno, type Host } from '../host/host.js';
import { labelSelectorString } from '../activities/kube/node-identity.js';

export interface FakeKubeletOptions {
  kc: KubeConfig;
  nodeName: string;
  host: Host;
  configPath?: string;
  namespace?: string;
  /** Labels of the plugin pods (the DaemonSet's pod template); default upstream's. */
  labels?: Record<string, string>;
  pollMs?: number;
  /** Errors of one reconcile pass (the next pass retries); ignored by default. */
  onError?: (err: unknown) => void;
}

export interface FakeKubelet {
  stop(): Promise<void>;
}

const DEFAULT_LABELS = { app: 'sriovdp', name: 'sriov-device-plugin' };
const CONTAINER = 'kube-sriovdp';
const IMAGE = 'sriov-network-device-plugin:latest';
const PCI_DEVICES = '/sys/bus/pci/devices';
const VALID_RESOURCE_NAME = /^[a-zA-Z0-9_-]+$/;
const DEVICE_TYPES = ['netDevice', 'accelerator', 'auxNetDevice'];
const MAX_CRASH_BACKOFF_MS = 10_000;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

type PluginStart = { ok: true; pools: Record<string, number> } | { ok: false; reason: string };

interface Selector {
  vendors?: string[];
  devices?: string[];
  drivers?: string[];
  pciAddresses?: string[];
}

interface PciDeviceSeen {
  address: string;
  vendor: string;
  device: string;
  driver?: string;
}

interface Container {
  ready: boolean;
  restartCount: number;
  nextStartAt: number;
}

function httpCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

const strip0x = (s: string) => s.trim().toLowerCase().replace(/^0x/, '');

/** The host's PCI devices as the plugin's discovery sees them at start. */
async function discoverDevices(host: Host): Promise<PciDeviceSeen[]> {
  let addresses: string[];
  try {
    addresses = await host.readdir(PCI_DEVICES);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
    throw err;
  }
  const out: PciDeviceSeen[] = [];
  for (const address of addresses) {
    const base = `${PCI_DEVICES}/${address}`;
    const read = (f: string) => host.readFile(`${base}/${f}`).then(strip0x, () => '');
    const driver = await host.readlink(`${base}/driver`).then((t) => t.slice(t.lastIndexOf('/') + 1), () => undefined);
    out.push({ address, vendor: await read('vendor'), device: await read('device'), driver });
  }
  return out;
}

/** Every listed field must match (the plugin ANDs them); an empty selector matches everything. */
function selectorMatches(s: Selector, d: PciDeviceSeen): boolean {
  const has = (list: string[] | undefined, v: string | undefined) => !list?.length || (v !== undefined && list.includes(v));
  return (
    has(s.vendors?.map(strip0x), d.vendor) &&
    has(s.devices?.map(strip0x), d.device) &&
    has(s.drivers, d.driver) &&
    has(s.pciAddresses?.map((a) => a.toLowerCase()), d.address)
  );
}

/** readConfig + discovery of sriovdp's main(): the pools it would register, or why it exits. */
async function startPlugin(host: Host, configPath: string): Promise<PluginStart> {
  let text: string;
  try {
    text = await host.readFile(configPath);
  } catch (err) {
    return { ok: false, reason: `error reading ${configPath}: ${(err as Error).message}` };
  }
  let raw: { resourceList?: unknown };
  try {
    raw = JSON.parse(text) as { resourceList?: unknown };
  } catch (err) {
    return { ok: false, reason: `error unmarshalling ${configPath}: ${(err as Error).message}` };
  }
  const list = raw?.resourceList;
  if (!Array.isArray(list) || list.length === 0) return { ok: false, reason: 'no resource configuration; exiting' };
  const pools: Array<{ key: string; selectors: Selector[] }> = [];
  for (const r of list as Array<Record<string, unknown>>) {
    const name = r?.resourceName;
    if (typeof name !== 'string' || !VALID_RESOURCE_NAME.test(name)) return { ok: false, reason: `resource name ${JSON.stringify(name)} is invalid` };
    if (r.deviceType !== undefined && !DEVICE_TYPES.includes(String(r.deviceType))) return { ok: false, reason: `unknown deviceType ${JSON.stringify(r.deviceType)}` };
    const prefix = typeof r.resourcePrefix === 'string' && r.resourcePrefix !== '' ? r.resourcePrefix : DEFAULT_RESOURCE_PREFIX;
    const key = `${prefix}/${name}`;
    if (pools.some((p) => p.key === key)) return { ok: false, reason: `duplicate resource ${key}` };
    const selectors = Array.isArray(r.selectors) ? (r.selectors as Selector[]) : [(r.selectors ?? {}) as Selector];
    pools.push({ key, selectors });
  }
  // A device goes to the first pool that matches; a pool without devices is skipped, not registered.
  const claimed = new Set<string>();
  const devices = await discoverDevices(host);
  const registered: Record<string, number> = {};
  for (const pool of pools) {
    const mine = devices.filter((d) => !claimed.has(d.address) && pool.selectors.some((s) => selectorMatches(s, d)));
    for (const d of mine) claimed.add(d.address);
    if (mine.length > 0) registered[pool.key] = mine.length;
  }
  return { ok: true, pools: registered };
}

export async function startFakeKubelet(opts: FakeKubeletOptions): Promise<FakeKubelet> {
  const { kc, nodeName, host } = opts;
  const configPath = opts.configPath ?? DEFAULT_DEVICE_PLUGIN_CONFIG_PATH;
  const namespace = opts.namespace ?? 'kube-system';
  const labels = opts.labels ?? DEFAULT_LABELS;
  const pollMs = opts.pollMs ?? 200;
  const core = kc.makeApiClient(CoreV1Api);
  const selector = labelSelectorString(labels);
  const containers = new Map<string, Container>();
  /** Resources this node's device manager has ever seen (its checkpoint). */
  const known = new Set<string>();

  async function ensureNamespace(): Promise<void> {
    try {
      await core.createNamespace({ body: { metadata: { name: namespace } } });
    } catch (err) {
      if (httpCode(err) !== 409) throw err;
    }
  }

  async function patchNodeResources(capacity: Record<string, string> | undefined, allocatable: Record<string, string>): Promise<void> {
    if (Object.keys(allocatable).length === 0) return;
    await core.patchNodeStatus({ name: nodeName, body: { status: { ...(capacity ? { capacity } : {}), allocatable } } }, mergePatch);
  }

  /** Registration of the new plugin: its pools at their counts, forgotten ones at 0. */
  async function publishPools(pools: Record<string, number>): Promise<void> {
    for (const k of Object.keys(pools)) known.add(k);
    const counts = Object.fromEntries([...known].map((k) => [k, String(pools[k] ?? 0)]));
    await patchNodeResources(counts, counts);
  }

  /** The plugin stopped: its devices turn unhealthy, so nothing is allocatable until it re-registers. */
  async function withdrawPools(): Promise<void> {
    await patchNodeResources(undefined, Object.fromEntries([...known].map((k) => [k, '0'])));
  }

  async function createPod(): Promise<void> {
    const pod: V1Pod = {
      metadata: { generateName: 'sriov-device-plugin-', namespace, labels: { ...labels } },
      spec: {
        nodeName,
        hostNetwork: true,
        terminationGracePeriodSeconds: 30,
        tolerations: [{ operator: 'Exists', effect: 'NoSchedule' }],
        containers: [{ name: CONTAINER, image: IMAGE, args: ['--log-level=10', `--config-file=${configPath}`], securityContext: { privileged: true } }],
      },
    };
    await core.createNamespacedPod({ namespace, body: pod });
  }

  async function patchPodStatus(pod: V1Pod, started: PluginStart, restartCount: number): Promise<void> {
    const now = new Date().toISOString();
    const ready = started.ok ? 'True' : 'False';
    const condition = (type: string, status: string) => ({ type, status, lastTransitionTime: now, ...(status === 'False' ? { reason: 'ContainersNotReady' } : {}) });
    const state = started.ok
      ? { running: { startedAt: now } }
      : { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting failed container ${CONTAINER}` } };
    const lastState = started.ok ? {} : { terminated: { exitCode: 1, reason: 'Error', message: started.reason, startedAt: now, finishedAt: now } };
    const status = {
      phase: 'Running',
      startTime: pod.status?.startTime ?? now,
      conditions: [condition('PodScheduled', 'True'), condition('Initialized', 'True'), condition('ContainersReady', ready), condition('Ready', ready)],
      containerStatuses: [{ name: CONTAINER, image: IMAGE, imageID: '', ready: started.ok, started: started.ok, restartCount, state, lastState }],
    };
    await core.patchNamespacedPodStatus({ name: pod.metadata!.name!, namespace, body: { status } }, mergePatch);
  }

  async function runContainer(pod: V1Pod, restartCount: number): Promise<void> {
    const started = await startPlugin(host, configPath);
    if (started.ok) await publishPools(started.pools);
    await patchPodStatus(pod, started, restartCount);
    const backoff = Math.min(MAX_CRASH_BACKOFF_MS, pollMs * 5 * 2 ** restartCount);
    containers.set(pod.metadata!.uid!, { ready: started.ok, restartCount, nextStartAt: Date.now() + backoff });
  }

  async function reconcile(): Promise<void> {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: selector, fieldSelector: `spec.nodeName=${nodeName}` })).items;
    const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
    // A graceful delete: the kubelet stops the container, then removes the pod for good.
    for (const p of pods.filter((x) => x.metadata?.deletionTimestamp)) {
      await core
        .deleteNamespacedPod({ name: p.metadata!.name!, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid: p.metadata!.uid! } } })
        .catch((err: unknown) => {
          if (httpCode(err) !== 404 && httpCode(err) !== 409) throw err;
        });
    }
    const liveUids = new Set(live.map((p) => p.metadata!.uid!));
    for (const [uid, c] of [...containers]) {
      if (liveUids.has(uid)) continue;
      containers.delete(uid);
      if (c.ready) await withdrawPools();
    }
    if (live.length === 0) {
      await createPod();
      return;
    }
    for (const pod of live) {
      const c = containers.get(pod.metadata!.uid!);
      if (!c) await runContainer(pod, 0);
      else if (!c.ready && Date.now() >= c.nextStartAt) await runContainer(pod, c.restartCount + 1);
    }
  }

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();
  const loop = () => {
    pass = reconcile()
      .catch((err: unknown) => opts.onError?.(err))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, pollMs);
      });
  };

  await ensureNamespace();
  // The first passes run before returning, so the plugin pod exists (and has started) once we resolve.
  await reconcile();
  await reconcile();
  loop();

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await pass;
    },
  };
}
