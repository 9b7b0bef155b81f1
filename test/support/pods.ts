// Plays the kubelet and container runtime for resctrl tests: Pod objects on
// the real API server with running container statuses, and matching cgroups
// and processes on a simulated host.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { QosClass } from '../../host/cgroup.js';
import type { SimHost } from '../../host/sim/sim-host.js';

export interface RunningContainer {
  name: string;
  id: string;
  cgroup: string;
  pids: number[];
}

export interface TestPod {
  namespace: string;
  name: string;
  uid: string;
  qos: QosClass;
  containers: RunningContainer[];
}

const RESOURCES = {
  BestEffort: {},
  Burstable: { requests: { cpu: '50m' } },
  Guaranteed: { requests: { cpu: '50m', memory: '32Mi' }, limits: { cpu: '50m', memory: '32Mi' } },
} as const;

export async function ensureNamespace(core: CoreV1Api, name: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
}

/** Creates the pod bound to the node, then "starts" its containers: cgroups, processes, Running status. */
export async function runPod(core: CoreV1Api, host: SimHost, opts: { namespace: string; name: string; node: string; qos?: TestPod['qos']; containers: { name: string; threads?: number }[]; start?: number }): Promise<TestPod> {
  const qos = opts.qos ?? 'BestEffort';
  const pod = await core.createNamespacedPod({
    namespace: opts.namespace,
    body: {
      metadata: { name: opts.name },
      // The API server derives status.qosClass from the resources: ask for what gives the wanted class.
      spec: { nodeName: opts.node, containers: opts.containers.map((c) => ({ name: c.name, image: 'registry.invalid/app:1', resources: RESOURCES[qos] })) },
    },
  });
  const t: TestPod = { namespace: opts.namespace, name: opts.name, uid: pod.metadata!.uid!, qos, containers: [] };
  // All containers start before the kubelet reports them, in one status update.
  for (const c of opts.containers.slice(0, opts.start ?? opts.containers.length)) spawnContainer(host, t, c);
  await writeStatus(core, t);
  return t;
}

function spawnContainer(host: SimHost, pod: TestPod, c: { name: string; threads?: number }): RunningContainer {
  const id = randomBytes(32).toString('hex');
  const cgroup = host.addContainer({ podUid: pod.uid, qos: pod.qos, containerId: id });
  const { pid } = host.spawn({ cgroup, threads: c.threads ?? 1 });
  const running = { name: c.name, id, cgroup, pids: [pid] };
  pod.containers.push(running);
  return running;
}

/** A container that starts after the others (reported in a later status update). */
export async function startContainer(core: CoreV1Api, host: SimHost, pod: TestPod, c: { name: string; threads?: number }): Promise<RunningContainer> {
  const running = spawnContainer(host, pod, c);
  await writeStatus(core, pod);
  return running;
}

async function writeStatus(core: CoreV1Api, pod: TestPod): Promise<void> {
  const current = await core.readNamespacedPodStatus({ namespace: pod.namespace, name: pod.name });
  current.status = {
    phase: 'Running',
    qosClass: current.status?.qosClass,
    conditions: [{ type: 'Ready', status: 'True' }],
    containerStatuses: pod.containers.map((c) => ({
      name: c.name, containerID: `containerd://${c.id}`, image: 'registry.invalid/app:1', imageID: '', ready: true, restartCount: 0,
      state: { running: { startedAt: new Date() } },
    })),
  };
  await core.replaceNamespacedPodStatus({ namespace: pod.namespace, name: pod.name, body: current });
}

export async function deletePod(core: CoreV1Api, host: SimHost, pod: TestPod): Promise<void> {
  for (const c of pod.containers) for (const pid of c.pids) host.exit(pid);
  // No kubelet confirms termination here: delete with grace 0 so the object goes at once.
  await core.deleteNamespacedPod({ namespace: pod.namespace, name: pod.name, gracePeriodSeconds: 0 });
}
