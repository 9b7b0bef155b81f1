// The node agent: activities only, on the node's own task queue
// (samples-typescript worker-specific-task-queues).
import { nodeTaskQueue } from '../common/names.js';
import { createNodeActivities, type NodeAgentDeps } from '../activities/node/index.js';
import type { WorkerSpec } from './bootstrap.js';

export function nodeAgentWorkerSpec(deps: NodeAgentDeps): WorkerSpec {
  return {
    taskQueue: nodeTaskQueue(deps.nodeName),
    identity: `node-agent@${deps.nodeName}`,
    activities: createNodeActivities(deps),
  };
}
