// The watcher: client-node informers on NodeENIs and Nodes. It adds our
// finalizer and starts or signals the entity workflow of every NodeENI that a
// change concerns. It decides nothing else: the workflows re-read the world
// themselves, so a signal only says "look again", and a restarted watcher
// converges by signalling every object it lists at start-up.
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { API_GROUP, API_VERSION, devicePluginWorkflowId, entityWorkflowId, FINALIZER, NODEENI_PLURAL, resctrlWorkflowId } from '../common/names.js';
import { SA_NODE_NAME, SA_NODEENI } from '../common/search-attributes.js';
import type { NodeENIObject } from '../common/types.js';
import { selectorMatches } from '../activities/kube/node-identity.js';
import { devicePluginRecheckSignal, ENTITY_PRIORITY, ENTITY_WORKFLOW_TASK_TIMEOUT, podsChangedSignal, reconcileSignal, type EntityInput, type EntityOptions, type ResctrlNodeInput, type ResctrlOptions } from '../common/workflow-api.js';

export interface WatcherLogger {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

export interface WatcherOptions {
  kc: KubeConfig;
  client: Client;
  taskQueue: string;
  entityOptions?: Partial<EntityOptions>;
  /** Only NodeENIs with these labels (sharding several controllers over one cluster). */
  nodeEniLabelSelector?: string;
  /** When set, pods are watched too and each node's resctrl workflow is kept informed. */
  resctrl?: ResctrlOptions;
  logger: WatcherLogger;
}

export interface Watcher {
  stop(): Promise<void>;
}

type NodeENIItem = NodeENIObject & KubernetesObject;

/**
 * What about a node concerns its NodeENIs: its labels, its instance, and its boot (the kubelet
 * reports a new bootID after a reboot, which resets MTUs, links and DPDK bindings: the entities
 * then check the node for drift at once instead of at their next resync).
 */
function nodeFingerprint(node: V1Node): string {
  return JSON.stringify([node.metadata?.labels ?? {}, node.spec?.providerID ?? '', node.status?.nodeInfo?.bootID ?? '']);
}

function nodeEniFingerprint(o: NodeENIItem): string {
  return JSON.stringify([o.metadata.generation, o.metadata.deletionTimestamp ?? null, (o.metadata.finalizers ?? []).includes(FINALIZER)]);
}

export async function startWatcher(opts: WatcherOptions): Promise<Watcher> {
  const { kc, client, logger } = opts;
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  // Only to skip no-op updates (e.g. our own status writes); losing it on restart is harmless.
  const seenNodeEnis = new Map<string, string>();
  const seenNodes = new Map<string, { fingerprint: string; labels: Record<string, string> }>();
  let stopped = false;

  const nodeEniInformer = makeInformer<NodeENIItem>(
    kc,
    `/apis/${API_GROUP}/${API_VERSION}/${NODEENI_PLURAL}`,
    () => custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, labelSelector: opts.nodeEniLabelSelector }) as Promise<KubernetesListObject<NodeENIItem>>,
    opts.nodeEniLabelSelector,
  );
  const nodeInformer = makeInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode());

  /** True when this call added our finalizer: the update it makes comes back as an event of its own. */
  async function ensureFinalizer(o: NodeENIItem): Promise<boolean> {
    if (o.metadata.deletionTimestamp || (o.metadata.finalizers ?? []).includes(FINALIZER)) return false;
    try {
      await custom.patchClusterCustomObject(
        {
          group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name: o.metadata.name,
          body: { metadata: { finalizers: [...(o.metadata.finalizers ?? []), FINALIZER], resourceVersion: o.metadata.resourceVersion } },
        },
        mergePatch,
      );
      return true;
    } catch (err) {
      // A conflict means a newer version exists; its update event brings us back here.
      logger.warn('adding finalizer failed; will retry on the next event', { nodeeni: o.metadata.name, error: String(err) });
      return false;
    }
  }

  async function poke(o: NodeENIItem, why: string): Promise<void> {
    const { name, uid } = o.metadata;
    const workflowId = entityWorkflowId(name, uid);
    try {
      await client.workflow.signalWithStart<(input: EntityInput) => Promise<void>, []>('nodeEniEntity', {
        workflowId,
        taskQueue: opts.taskQueue,
        args: [{ name, uid, options: opts.entityOptions }],
        signal: reconcileSignal,
        signalArgs: [],
        // A completed entity means its object is gone; a failed or terminated one may be restarted.
        workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        workflowTaskTimeout: ENTITY_WORKFLOW_TASK_TIMEOUT,
        priority: ENTITY_PRIORITY,
        staticSummary: `NodeENI ${name}`,
        staticDetails: `Entity workflow of NodeENI **${name}** (uid ${uid}). Signal \`reconcile\` to re-read; Update \`forceFinish\` to end a stuck teardown.`,
        typedSearchAttributes: [{ key: SA_NODEENI, value: name }],
      });
      logger.info('signalled entity', { nodeeni: name, workflowId, why });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      logger.error('could not signal entity', { nodeeni: name, workflowId, error: String(err) });
    }
  }

  async function signalIfRunning(o: NodeENIItem): Promise<void> {
    try {
      await client.workflow.getHandle(entityWorkflowId(o.metadata.name, o.metadata.uid)).signal(reconcileSignal);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) logger.error('could not signal entity', { nodeeni: o.metadata.name, error: String(err) });
    }
  }

  function onNodeEni(o: NodeENIItem, why: string) {
    const fp = nodeEniFingerprint(o);
    if (seenNodeEnis.get(o.metadata.uid) === fp) return;
    seenNodeEnis.set(o.metadata.uid, fp);
    // The entity waits for our finalizer before it creates anything: once we add it, the update event
    // pokes it, and a poke now would only wake it for a pass that finds the object unguarded (or, the
    // patch being fast, a second pass right behind the first, competing with its first child).
    void ensureFinalizer(o).then((added) => (added ? undefined : poke(o, why)));
  }

  function concerns(o: NodeENIItem, nodeName: string, labelSets: Record<string, string>[]): boolean {
    return (
      labelSets.some((labels) => selectorMatches(o.spec?.nodeSelector ?? {}, labels)) ||
      (o.status?.attachments ?? []).some((a) => a.nodeID === nodeName)
    );
  }

  function onNode(node: V1Node, deleted: boolean) {
    const name = node.metadata?.name ?? '';
    const before = seenNodes.get(name);
    const fingerprint = nodeFingerprint(node);
    if (!deleted && before?.fingerprint === fingerprint) return;
    const labels = node.metadata?.labels ?? {};
    if (deleted) seenNodes.delete(name);
    else seenNodes.set(name, { fingerprint, labels });
    const labelSets = before ? [labels, before.labels] : [labels];
    for (const o of (nodeEniInformer as ObjectCache<NodeENIItem>).list()) {
      if (concerns(o, name, labelSets)) void poke(o, `node ${name} ${deleted ? 'deleted' : before ? 'changed' : 'appeared'}`);
    }
    // The node's own workflows end once it is gone: tell them to look (only if they run; a gone node needs none started).
    if (deleted) {
      void signalWorkflowIfRunning(devicePluginWorkflowId(name), devicePluginRecheckSignal);
      if (opts.resctrl) void signalWorkflowIfRunning(resctrlWorkflowId(name), podsChangedSignal);
    }
  }

  async function signalWorkflowIfRunning(workflowId: string, signal: typeof devicePluginRecheckSignal): Promise<void> {
    try {
      await client.workflow.getHandle(workflowId).signal(signal);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) logger.error('could not signal workflow', { workflowId, error: String(err) });
    }
  }

  nodeEniInformer.on('add', (o) => onNodeEni(o, 'added'));
  nodeEniInformer.on('update', (o) => onNodeEni(o, 'updated'));
  nodeEniInformer.on('delete', (o) => {
    seenNodeEnis.delete(o.metadata.uid);
    void signalIfRunning(o);
  });
  nodeInformer.on('add', (n) => onNode(n, false));
  nodeInformer.on('update', (n) => onNode(n, false));
  nodeInformer.on('delete', (n) => onNode(n, true));

  // Pods: only what resctrl cares about (containers starting/stopping, the pod going).
  const seenPods = new Map<string, string>();
  const podInformer = opts.resctrl ? makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces()) : undefined;
  async function pokeResctrl(nodeName: string, why: string): Promise<void> {
    try {
      await client.workflow.signalWithStart<(input: ResctrlNodeInput) => Promise<void>, []>('resctrlNode', {
        workflowId: resctrlWorkflowId(nodeName),
        taskQueue: opts.taskQueue,
        args: [{ nodeName, options: opts.resctrl! }],
        signal: podsChangedSignal,
        signalArgs: [],
        staticSummary: `resctrl groups of the pods on node ${nodeName}`,
        staticDetails: `Keeps one Intel RDT (resctrl) group per pod on node ${nodeName}, creating and removing groups as pods come and go. Query resctrlState for the groups.`,
        typedSearchAttributes: [{ key: SA_NODE_NAME, value: nodeName }],
      });
    } catch (err) {
      logger.error('could not signal resctrl workflow', { node: nodeName, why, error: String(err) });
    }
  }
  function onPod(pod: V1Pod, deleted: boolean) {
    const nodeName = pod.spec?.nodeName;
    const uid = pod.metadata?.uid ?? '';
    if (!nodeName) return;
    const fp = JSON.stringify([pod.status?.phase, pod.metadata?.deletionTimestamp ?? null, (pod.status?.containerStatuses ?? []).map((c) => [c.containerID, !!c.state?.running]), (pod.status?.ephemeralContainerStatuses ?? []).map((c) => [c.containerID, !!c.state?.running])]);
    if (!deleted && seenPods.get(uid) === fp) return;
    if (deleted) seenPods.delete(uid);
    else seenPods.set(uid, fp);
    void pokeResctrl(nodeName, `pod ${pod.metadata?.namespace}/${pod.metadata?.name} ${deleted ? 'deleted' : 'changed'}`);
  }
  podInformer?.on('add', (p) => onPod(p, false));
  podInformer?.on('update', (p) => onPod(p, false));
  podInformer?.on('delete', (p) => onPod(p, true));

  // client-node informers stop on a watch error; restart them after a pause.
  const restartOnError = <T extends KubernetesObject>(inf: Informer<T>, what: string) => {
    inf.on('error', (err) => {
      if (stopped) return;
      logger.warn(`${what} informer error; restarting`, { error: String(err) });
      setTimeout(() => { if (!stopped) void inf.start(); }, 2000);
    });
  };
  restartOnError(nodeEniInformer, 'NodeENI');
  restartOnError(nodeInformer, 'Node');
  if (podInformer) restartOnError(podInformer, 'Pod');

  // NodeENIs first, so the node informer's initial adds find them in the cache.
  await nodeEniInformer.start();
  await nodeInformer.start();
  await podInformer?.start();
  logger.info('watcher started', { taskQueue: opts.taskQueue });

  return {
    async stop() {
      stopped = true;
      await Promise.all([nodeEniInformer.stop(), nodeInformer.stop(), podInformer?.stop()]);
    },
  };
}
