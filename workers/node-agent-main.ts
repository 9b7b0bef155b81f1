// The node agent's process lifecycle, shared by the real agent and the
// sandbox's simulated nodes: validated config, runtime, worker, drain.
import type { Host } from '../host/host.js';
import { connectChecked, installRuntime, shutdownOnSignals, startWorkers } from './bootstrap.js';
import { loadConfig, nodeAgentConfigSchema } from './config.js';
import { describeTemporal, temporalSettings } from './temporal-connection.js';
import { startOrExit } from './temporal-startup.js';
import { nodeAgentWorkerSpec } from './node-agent-worker.js';
import { announceNodeAgentStart } from './node-agent-announce.js';
import { StartupTimer } from './startup-timer.js';

export async function runNodeAgent(opts: { host?: Host; makeHost?: (root: string) => Host; onStop?: () => Promise<void> }): Promise<void> {
  const startup = new StartupTimer();
  // Validated before any client exists: a missing NODE_NAME fails here, at once.
  const config = loadConfig(nodeAgentConfigSchema);
  const host = opts.host ?? opts.makeHost!(config.HOST_ROOT);
  const logger = installRuntime({ logLevel: config.LOG_LEVEL, metricsBindAddress: config.METRICS_BIND_ADDRESS });
  const temporal = temporalSettings(config);
  // The agent upserts no search attribute: only the namespace is checked.
  const connection = await startOrExit(logger, 'node agent', () => connectChecked(temporal, { logger }));
  startup.step('temporalChecks');
  const running = await startWorkers(connection, config.TEMPORAL_NAMESPACE, [nodeAgentWorkerSpec({ host, nodeName: config.NODE_NAME, devicePluginConfigPath: config.DEVICE_PLUGIN_CONFIG_PATH, enableNoIommu: config.DPDK_ENABLE_NOIOMMU })]);
  startup.step('worker');
  logger.info('node agent started', {
    node: config.NODE_NAME, hostRoot: host.root, temporal: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, connection: describeTemporal(temporal), startup: startup.figures(),
  });
  // Polling first, then the news: an entity that verifies at once finds this agent serving.
  void announceNodeAgentStart({ connection, namespace: config.TEMPORAL_NAMESPACE, nodeName: config.NODE_NAME, logger });
  shutdownOnSignals(logger, async () => {
    await running.shutdown();
    await opts.onStop?.();
  });
  await running.done;
}
