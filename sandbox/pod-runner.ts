// Plays the kubelet and the container runtime for ordinary pods on one
// simulated node of the sandbox: a pod scheduled there gets a cgroup and
// processes per container on the simulated host and a Running status; when it
// is deleted its processes exit. (The device plugin's own pod is the fake
// kubelet's.) Polls the API server; stops cleanly.
import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { QosClass } from '../host/cgroup.js';
import type { SimHost } from '../host/sim/sim-host.js';

export interface PodRunner {
  stop(): Promise<void>;
}

export function startPodRunner(opts: { kc: KubeConfig; nodeName: string; host: SimHost; pollMs?: number; threadsPerContainer?: number; skip?: (pod: V1Pod) => boolean }): PodRunner {
  const core = opts.kc.makeApiClient(CoreV1Api);
  const running = new Map<string, number[]>(); // pod uid → pids
  let stopped = false;

  async function start(pod: V1Pod): Promise<void> {
    const uid = pod.metadata!.uid!;
    const qos = (pod.status?.qosClass ?? 'BestEffort') as QosClass;
    const pids: number[] = [];
    const statuses = (pod.spec?.containers ?? []).map((c) => {
      const id = randomBytes(32).toString('hex');
      const cgroup = opts.host.addContainer({ podUid: uid, qos, containerId: id });
      pids.push(opts.host.spawn({ cgroup, threads: opts.threadsPerContainer ?? 2 }).pid);
      return { name: c.name, containerID: `containerd://${id}`, image: c.image ?? '', imageID: '', ready: true, restartCount: 0, state: { running: { startedAt: new Date() } } };
    });
    running.set(uid, pids);
    pod.status = { ...pod.status, phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: statuses };
    await core.replaceNamespacedPodStatus({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, body: pod });
  }

  async function pass(): Promise<void> {
    const pods = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${opts.nodeName}` })).items;
    const live = new Set<string>();
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? '';
      if (opts.skip?.(pod)) continue;
      if (pod.metadata?.deletionTimestamp) {
        // As the kubelet does once the containers stopped: confirm the deletion.
        await core.deleteNamespacedPod({ namespace: pod.metadata.namespace!, name: pod.metadata.name!, gracePeriodSeconds: 0 });
        continue;
      }
      live.add(uid);
      if (!running.has(uid) && pod.status?.phase !== 'Running') await start(pod);
    }
    for (const [uid, pids] of running) {
      if (live.has(uid)) continue;
      for (const pid of pids) opts.host.exit(pid);
      running.delete(uid);
    }
  }

  const loop = (async () => {
    while (!stopped) {
      await pass().catch(() => undefined);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
