// Components started as separate processes from their production entry
// points (so a test can SIGKILL them, or a benchmark measure them), configured
// like the in-process ones and authenticated as the ServiceAccounts deploy/ ships.
import type { ManagedProcess } from '../../sandbox/backends/tools.js';
import { startEntryPoint, type ProcessOptions } from '../../sandbox/entry-point.js';
import { TEST_DEVICE_PLUGIN_OPTIONS, TEST_ENTITY_OPTIONS, type TestCluster } from './cluster.js';

function temporalEnv(c: TestCluster): Record<string, string> {
  return { TEMPORAL_ADDRESS: c.backends.temporalAddress, TEMPORAL_NAMESPACE: c.backends.temporalNamespace };
}

export async function controlWorkerProcess(c: TestCluster, opts: ProcessOptions = {}): Promise<ManagedProcess> {
  const { configMap } = TEST_DEVICE_PLUGIN_OPTIONS;
  return startEntryPoint('control-worker', 'workers/control', {
    ...opts,
    env: {
      ...temporalEnv(c),
      CONTROL_TASK_QUEUE: c.taskQueue,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_EC2: c.backends.ec2Endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      KUBECONFIG: await c.kubeconfigFileFor('nodeeni-control-worker'),
      DEVICE_PLUGIN_NAMESPACES: TEST_DEVICE_PLUGIN_OPTIONS.namespaces.join(','),
      DEVICE_PLUGIN_SELECTORS: TEST_DEVICE_PLUGIN_OPTIONS.labelSelectors.join(','),
      ...(configMap ? { DEVICE_PLUGIN_CONFIGMAP: `${configMap.namespace}/${configMap.name}` } : {}),
      // From source the workflows are bundled at start; a build has its bundle.
      ...(opts.dist ? {} : { NODEENI_WORKFLOWS_FROM_SOURCE: '1' }),
      LOG_LEVEL: 'WARN',
      ...opts.env,
    },
  });
}

/**
 * The watcher (watcher/main.ts) for this cluster's NodeENIs, as the watcher
 * ServiceAccount. `timings`: the in-process watcher's short test clocks
 * (TEST_ENTITY_OPTIONS, default), or the shipped defaults.
 */
export async function watcherProcess(c: TestCluster, opts: ProcessOptions & { timings?: 'test' | 'shipped' } = {}): Promise<ManagedProcess> {
  const t = TEST_ENTITY_OPTIONS;
  const testTimings: Record<string, string> = {
    RESYNC_SECONDS: String(t.resyncSeconds),
    DETACH_TIMEOUT_SECONDS: String(Math.ceil(t.detachTimeoutMs! / 1000)),
    NODE_AGENT_START_TIMEOUT_SECONDS: String(Math.ceil(t.nodeAgentStartTimeoutMs! / 1000)),
    FAILURE_BACKOFF_SECONDS: String(t.failureBackoffSeconds),
    PROVISION_DEADLINE_SECONDS: String(t.provisionDeadlineSeconds),
  };
  return startEntryPoint('watcher', 'watcher/main', {
    ...opts,
    env: {
      ...temporalEnv(c),
      CONTROL_TASK_QUEUE: c.taskQueue,
      KUBECONFIG: await c.kubeconfigFileFor('nodeeni-watcher'),
      CLUSTER_NAME: c.runId,
      NODEENI_LABEL_SELECTOR: `nodeeni-test=${c.runId}`,
      ...(opts.timings === 'shipped' ? {} : testTimings),
      LOG_LEVEL: 'WARN',
      ...opts.env,
    },
  });
}
