// Entry point of the watcher process (runs beside the control worker).
import { Client, Connection } from '@temporalio/client';
import { KubeConfig } from '@kubernetes/client-node';
import { shutdownOnSignals } from '../workers/bootstrap.js';
import { makeJsonLogger } from '../workers/logger.js';
import { loadConfig, watcherConfigSchema } from '../workers/config.js';
import { startWatcher } from './watcher.js';

const config = loadConfig(watcherConfigSchema);
const logger = makeJsonLogger(config.LOG_LEVEL);
const kc = new KubeConfig();
kc.loadFromDefault();
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });

const watcher = await startWatcher({
  kc,
  client,
  taskQueue: config.CONTROL_TASK_QUEUE,
  nodeEniLabelSelector: config.NODEENI_LABEL_SELECTOR,
  entityOptions: {
    clusterName: config.CLUSTER_NAME,
    resyncSeconds: config.RESYNC_SECONDS,
    detachTimeoutMs: config.DETACH_TIMEOUT_SECONDS * 1000,
    nodeAgentStartTimeoutMs: config.NODE_AGENT_START_TIMEOUT_SECONDS * 1000,
    failureBackoffSeconds: config.FAILURE_BACKOFF_SECONDS,
  },
  logger,
});
shutdownOnSignals(logger, async () => {
  await watcher.stop();
  await connection.close();
});
