// Starts (or signals) a node's device-plugin workflow on behalf of an entity:
// workflows cannot signal-with-start, activities can, through the worker's client.
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
      });
    },
  };
}

export type DevicePluginStarterActivities = ReturnType<typeof createDevicePluginStarter>;
