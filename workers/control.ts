// Entry point of the control worker process (a Deployment in the cluster).
import { EC2Client } from '@aws-sdk/client-ec2';
import { Client } from '@temporalio/client';
import { PooledKubeConfig } from '../activities/kube/pooled-kube-config.js';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes.js';
import { connectChecked, installRuntime, shutdownOnSignals, startWorkers } from './bootstrap.js';
import { controlConfigSchema, loadConfig } from './config.js';
import { controlWorkerSpecs } from './control-worker.js';
import { describeTemporal, temporalSettings } from './temporal-connection.js';
import { startOrExit } from './temporal-startup.js';
import { defaultWorkflowSource } from './workflow-source.js';
import { dataConverter } from './payload-codec.js';
import { ensureSweeperSchedule } from './sweeper-schedule.js';
import { StartupTimer } from './startup-timer.js';

const startup = new StartupTimer();
const config = loadConfig(controlConfigSchema);
const logger = installRuntime({ logLevel: config.LOG_LEVEL, metricsBindAddress: config.METRICS_BIND_ADDRESS });
// AWS_ENDPOINT_URL_EC2 and the credential chain come from the environment, as the SDK reads them.
// One attempt per call: Temporal is the one retry layer (with jitter for throttling, see activities/ec2/errors.ts).
const ec2 = new EC2Client({ region: config.AWS_REGION, maxAttempts: 1 });
// Keeps its connections to the API server (client-node would open one per request).
const kc = new PooledKubeConfig();
kc.loadFromDefault();
startup.step('runtime');

const temporal = temporalSettings(config);
// The namespace and the search attributes the workflows upsert, checked before any worker polls.
const connection = await startOrExit(logger, 'control worker', () =>
  connectChecked(temporal, {
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
    createMissing: config.TEMPORAL_CREATE_SEARCH_ATTRIBUTES,
    createHint: '(or set TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true on the control worker to create them at start)',
    logger,
  }),
);
startup.step('temporalChecks');
const running = await startWorkers(connection, config.TEMPORAL_NAMESPACE,
  controlWorkerSpecs({
    taskQueue: config.CONTROL_TASK_QUEUE,
    ec2,
    kc,
    workflows: defaultWorkflowSource(),
    devicePlugin: {
      namespaces: config.DEVICE_PLUGIN_NAMESPACES,
      labelSelectors: config.DEVICE_PLUGIN_SELECTORS,
      debounceMs: config.DEVICE_PLUGIN_DEBOUNCE_MS,
      maxDelayMs: Math.max(10_000, config.DEVICE_PLUGIN_DEBOUNCE_MS * 5),
      nodeAgentStartTimeoutMs: 120_000,
      restartTimeoutMs: config.DEVICE_PLUGIN_RESTART_TIMEOUT_SECONDS * 1000,
      maxHistoryLength: 2000,
      configMap: config.DEVICE_PLUGIN_CONFIGMAP,
    },
    ec2MutatingPerSecond: config.EC2_MUTATING_CALLS_PER_SECOND,
    ec2ReadPerSecond: config.EC2_READ_CALLS_PER_SECOND,
    maxCachedWorkflows: config.WORKFLOW_CACHE_SIZE,
  }),
);
startup.step('workers');
logger.info('control worker started', {
  taskQueue: config.CONTROL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, connection: describeTemporal(temporal), startup: startup.figures(),
});
// After the workers poll, so the first sweep finds one. A failure does not stop the worker (its main work
// goes on); it is logged until a restart succeeds: leaked ENIs then wait for `nodeeni sweep`.
const sweeper = { scheduleId: config.SWEEP_SCHEDULE_ID, taskQueue: config.CONTROL_TASK_QUEUE, enabled: config.SWEEP_ENABLED, intervalSeconds: config.SWEEP_INTERVAL_SECONDS,
  sweep: { clusterName: config.CLUSTER_NAME, graceSeconds: config.SWEEP_GRACE_SECONDS, dryRun: config.SWEEP_DRY_RUN } };
await ensureSweeperSchedule(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter }), sweeper).then(
  (how) => logger.info(`leaked-ENI sweeper schedule ${how}`, { scheduleId: sweeper.scheduleId, enabled: sweeper.enabled, intervalSeconds: sweeper.intervalSeconds, ...sweeper.sweep }),
  (err) => logger.error('could not create or update the leaked-ENI sweeper schedule; leaked ENIs are not swept until a restart succeeds', { scheduleId: sweeper.scheduleId, error: String(err) }),
);
shutdownOnSignals(logger, () => running.shutdown());
await running.done;
