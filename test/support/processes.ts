// Components started as separate processes from their production entry
// points (so a test can SIGKILL them), configured like the in-process ones
// and authenticated as the ServiceAccounts deploy/ ships.
import { startTsProcess, type ManagedProcess } from '../../sandbox/backends/tools.js';
import { TEST_DEVICE_PLUGIN_OPTIONS, type TestCluster } from './cluster.js';

export async function controlWorkerProcess(c: TestCluster): Promise<ManagedProcess> {
  const { configMap } = TEST_DEVICE_PLUGIN_OPTIONS;
  return startTsProcess('control-worker', 'workers/control.ts', {
    // NODEENI_PROCESS_ECHO=1 shows the process's log lines in the test output.
    echo: process.env.NODEENI_PROCESS_ECHO === '1',
    env: {
      TEMPORAL_ADDRESS: c.backends.temporalAddress,
      TEMPORAL_NAMESPACE: c.backends.temporalNamespace,
      CONTROL_TASK_QUEUE: c.taskQueue,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_EC2: c.backends.ec2Endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      KUBECONFIG: await c.kubeconfigFileFor('nodeeni-control-worker'),
      DEVICE_PLUGIN_NAMESPACES: TEST_DEVICE_PLUGIN_OPTIONS.namespaces.join(','),
      DEVICE_PLUGIN_SELECTORS: TEST_DEVICE_PLUGIN_OPTIONS.labelSelectors.join(','),
      ...(configMap ? { DEVICE_PLUGIN_CONFIGMAP: `${configMap.namespace}/${configMap.name}` } : {}),
      NODEENI_WORKFLOWS_FROM_SOURCE: '1',
      LOG_LEVEL: 'WARN',
    },
  });
}
