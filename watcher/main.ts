// Entry point of the watcher process (runs beside the control worker).
import { Client } from '@temporalio/client';
import { PooledKubeConfig } from '../activities/kube/pooled-kube-config.js';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes.js';
import { shutdownOnSignals } from '../workers/bootstrap.js';
import { makeJsonLogger } from '../workers/logger.js';
import { loadConfig, watcherConfigSchema } from '../workers/config.js';
import { describeTemporal, temporalSettings } from '../workers/temporal-connection.js';
import { connectClientChecked, startOrExit } from '../workers/temporal-startup.js';
import { startWatcher } from './watcher.js';
import { dataConverter } from '../workers/payload-codec.js';

const config = loadConfig(watcherConfigSchema);
const logger = makeJsonLogger(config.LOG_LEVEL);
const kc = new PooledKubeConfig();
kc.loadFromDefault();
const temporal = temporalSettings(config);
// Fails at once, naming what is missing, instead of logging a failed start per NodeENI forever.
const connection = await startOrExit(logger, 'watcher', () =>
  connectClientChecked(temporal, {
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
    createHint: '(or start the control worker once with TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true)',
    logger,
  }),
);
logger.info('connected to Temporal', { temporal: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, connection: describeTemporal(temporal) });
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter });

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
    provisionDeadlineSeconds: config.PROVISION_DEADLINE_SECONDS,
    maxConcurrentChildren: config.MAX_CONCURRENT_CHILDREN,
    maxStatusAttachments: config.MAX_STATUS_ATTACHMENTS,
    ...(config.TEMPORAL_UI_URL ? { uiBaseUrl: config.TEMPORAL_UI_URL } : {}),
  },
  resctrl: config.RESCTRL_ENABLED
    ? {
        groupPrefix: config.RESCTRL_GROUP_PREFIX,
        cleanupOnStart: config.RESCTRL_CLEANUP_ON_START,
        mode: config.RESCTRL_MODE,
        resyncSeconds: config.RESCTRL_RESYNC_SECONDS,
        nodeAgentStartTimeoutMs: config.NODE_AGENT_START_TIMEOUT_SECONDS * 1000,
        maxHistoryLength: 5000,
      }
    : undefined,
  logger,
});
shutdownOnSignals(logger, async () => {
  await watcher.stop();
  await connection.close();
});
