// Every activity the node agent serves on its `node-<nodeName>` task queue.
import type { Host } from '../../host/host.js';
import { createInterfaceActivities } from './interface-activities.js';

export interface NodeAgentDeps {
  host: Host;
  nodeName: string;
}

export function createNodeActivities(deps: NodeAgentDeps) {
  return {
    ...createInterfaceActivities(deps),
  };
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
