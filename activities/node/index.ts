// Every activity the node agent serves on its `node-<nodeName>` task queue.
import type { Host } from '../../host/host.js';
import { createInterfaceActivities } from './interface-activities.js';
import { createDevicePluginActivities } from './device-plugin-activities.js';
import { createDpdkActivities } from './dpdk-activities.js';
import { createResctrlActivities } from './resctrl-activities.js';
import { createVerifyActivities } from './verify-activities.js';
import { DEFAULT_DEVICE_PLUGIN_CONFIG_PATH } from '../../common/device-plugin.js';

export interface NodeAgentDeps {
  host: Host;
  nodeName: string;
  /** Host path of the SR-IOV device plugin's config.json (default /etc/pcidp/config.json). */
  devicePluginConfigPath?: string;
  /** Switch on vfio's no-IOMMU mode for DPDK binds when the host has no IOMMU (default true: most EC2 instance types have none). */
  enableNoIommu?: boolean;
}

export function createNodeActivities(deps: NodeAgentDeps) {
  return {
    ...createInterfaceActivities(deps),
    ...createDevicePluginActivities({ host: deps.host, nodeName: deps.nodeName, configPath: deps.devicePluginConfigPath ?? DEFAULT_DEVICE_PLUGIN_CONFIG_PATH }),
    ...createDpdkActivities({ host: deps.host, nodeName: deps.nodeName, enableNoIommu: deps.enableNoIommu ?? true }),
    ...createResctrlActivities({ host: deps.host, nodeName: deps.nodeName }),
    ...createVerifyActivities({ host: deps.host, nodeName: deps.nodeName }),
  };
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
