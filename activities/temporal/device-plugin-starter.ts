// Starts (or signals) a node's device-plugin workflow on behalf of an entity:
// workflows cannot signal-with-start, activities can, through the worker's client.
import { getClient } from '@temporalio/activity';
import { devicePluginWorkflowId } from '../../common/names.js';
import type { DevicePluginEntry } from '../../common/device-plugin.js';
import { publishEntriesSignal, type PublishEntries } from '../../workflows/device-plugin-messages.js';
import type { DevicePluginOptions, devicePluginNode } from '../../workflows/device-plugin-node.js';

export function createDevicePluginStarter(deps: { taskQueue: string; options: DevicePluginOptions }) {
  return {
    async publishDevicePluginEntries(input: { nodeName: string; owner: string; entries: DevicePluginEntry[]; requestId: string }): Promise<void> {
      await getClient().workflow.signalWithStart<typeof devicePluginNode, [PublishEntries]>('devicePluginNode', {
        workflowId: devicePluginWorkflowId(input.nodeName),
        taskQueue: deps.taskQueue,
        args: [{ nodeName: input.nodeName, options: deps.options }],
        signal: publishEntriesSignal,
        signalArgs: [{ owner: input.owner, entries: input.entries, requestId: input.requestId }],
        staticSummary: `SR-IOV device plugin config of node ${input.nodeName}`,
      });
    },
  };
}

export type DevicePluginStarterActivities = ReturnType<typeof createDevicePluginStarter>;
