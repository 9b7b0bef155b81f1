// Activity stubs with their timeout and retry groups. EC2 and Kubernetes run on
// the control queue; node-local steps run on the node's own queue.
import { proxyActivities } from '@temporalio/workflow';
import type { Ec2Activities } from '../activities/ec2/ec2-activities.js';
import type { KubeActivities } from '../activities/kube/kube-activities.js';
import type { NodeActivities } from '../activities/node/index.js';
import type { DevicePluginStarterActivities } from '../activities/temporal/device-plugin-starter.js';
import type { ChildStatusActivities } from '../activities/temporal/child-status.js';
import { nodeTaskQueue } from '../common/names.js';

/** EC2 calls retry until they succeed or fail for good; a stuck teardown is ended by force-finish. */
export const ec2 = proxyActivities<Ec2Activities>({
  startToCloseTimeout: '60s',
  // The worker interceptor heartbeats for us: a dead worker is noticed in seconds.
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
});

/**
 * Undo steps of a provisioning saga: bounded, because a provisioning must end.
 * What a failed undo leaves is tagged with its attachment key, so the entity
 * adopts it or tears it down on a later pass.
 */
export const ec2Compensation = proxyActivities<Pick<Ec2Activities, 'deleteEni' | 'detachEni' | 'waitForDetached'>>({
  startToCloseTimeout: '10m',
  scheduleToCloseTimeout: '15m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const ec2Waits = proxyActivities<Pick<Ec2Activities, 'waitForAttachment' | 'waitForDetached'>>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const kube = proxyActivities<KubeActivities>({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const devicePluginStarter = proxyActivities<DevicePluginStarterActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const childStatus = proxyActivities<ChildStatusActivities>({
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * Node-local activities. Schedule-To-Start bounds how long we wait for the
 * node's agent: nobody polls the queue of a node that is gone, and that
 * timeout is not retried (it would only re-enqueue on the same dead queue).
 */
export function onNode(nodeName: string, scheduleToStartMs: number) {
  return proxyActivities<NodeActivities>({
    taskQueue: nodeTaskQueue(nodeName),
    scheduleToStartTimeout: scheduleToStartMs,
    startToCloseTimeout: '60s',
    retry: { initialInterval: '500ms', backoffCoefficient: 1.5, maximumInterval: '10s', maximumAttempts: 60 },
  });
}
