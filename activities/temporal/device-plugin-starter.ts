// Starts (or signals) a node's device-plugin workflow on behalf of an entity:
// workflows cannot signal-with-start, activities can, through the worker's client.
import { SA_NODE_NAME, SA_NODEENI } from '../../common/search-attributes.js';
import { getClient } from '@temporalio/activity';
import { devicePluginWorkflowId } from '../../common/names.js';
import type { DevicePluginEntry } from '../../common/device-plugin.js';
import { publishEntriesSignal, type DevicePluginNodeInput, type DevicePluginOptions, type PublishEntries } from '../../common/workflow-api.js';

export function createDevicePluginStarter(deps: { taskQueue: string; options: DevicePluginOptions }) {
  return {
    async publishDevicePluginEntries(input: { nodeName: string; owner: string; entries: DevicePluginEntry[]; requestId: string }): Promise<void> {
      await getClient().workflow.signalWithStart<(input: DevicePluginNodeInput) => Promise<void>, [PublishEntries]>('devicePluginNode', {
        workflowId: devicePluginWorkflowId(input.nodeName),
        taskQueue: deps.taskQueue,
        args: [{ nodeName: input.nodeName, options: deps.options }],
        signal: publishEntriesSignal,
        signalArgs: [{ owner: input.owner, entries: input.entries, requestId: input.requestId }],
        staticSummary: `SR-IOV device plugin config of node ${input.nodeName}`,
        staticDetails: `Owns the SR-IOV network device plugin's config on node ${input.nodeName}: the resources every NodeENI publishes there, merged; restarts the plugin pod when it changes. Query devicePluginState for who publishes what.`,
        // Found in the UI with NodeName="<node>", like the NodeENI workflows serving that node.
        typedSearchAttributes: [{ key: SA_NODE_NAME, value: input.nodeName }, { key: SA_NODEENI, value: nodeEniNameOf(input.owner) }],
      });
    },
  };
}

export type DevicePluginStarterActivities = ReturnType<typeof createDevicePluginStarter>;

/** The NodeENI name in an entity workflow ID (`nodeeni/<name>/<uid>`): the first that asked for this node's workflow. */
function nodeEniNameOf(entityWorkflowId: string): string {
  return entityWorkflowId.split('/')[1] ?? entityWorkflowId;
}
