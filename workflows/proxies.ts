// Activity stubs with their timeout and retry groups. EC2 and Kubernetes run on
// the control queue; node-local steps run on the node's own queue.
import { proxyActivities, proxyLocalActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Ec2Activities } from '../activities/ec2/ec2-activities.js';
import type { KubeActivities } from '../activities/kube/kube-activities.js';
import type { NodeActivities } from '../activities/node/index.js';
import type { DevicePluginStarterActivities } from '../activities/temporal/device-plugin-starter.js';
import type { ChildStatusActivities } from '../activities/temporal/child-status.js';
import type { ChildStarterActivities } from '../activities/temporal/child-starter.js';
import type { SweeperEc2Activities } from '../activities/ec2/sweeper-activities.js';
import type { SweeperKubeActivities } from '../activities/kube/nodeeni-owners.js';
import { ec2TaskQueue, nodeTaskQueue, type Ec2Api } from '../common/names.js';

// Every activity has a Heartbeat Timeout: the workers heartbeat on its behalf (heartbeat-interceptor.ts),
// so a worker killed mid-call costs seconds, not the whole Start-To-Close.

/** EC2 calls retry until they succeed or fail for good; a stuck teardown is ended by force-finish. */
export const ec2 = proxyActivities<Ec2Activities>({
  startToCloseTimeout: '60s',
  // The worker interceptor heartbeats for us: a dead worker is noticed in seconds.
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
});

const EC2_CALL: ActivityOptions = {
  startToCloseTimeout: '60s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
};

/** Undo steps are bounded: a provisioning must end (see ec2Compensation). */
const EC2_UNDO: ActivityOptions = {
  startToCloseTimeout: '10m',
  scheduleToCloseTimeout: '15m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
};

/**
 * EC2 activities on the task queue of the API they call, next to this
 * workflow's queue: the queue's rate limit paces that API for every worker
 * (control-worker.ts). Call inside workflow code (it reads workflowInfo).
 */
export function pacedEc2(undo = false) {
  const on = (api: Ec2Api) => proxyActivities<Ec2Activities>({ ...(undo ? EC2_UNDO : EC2_CALL), taskQueue: ec2TaskQueue(workflowInfo().taskQueue, api) });
  return { create: on('create'), attach: on('attach'), modify: on('modify'), detach: on('detach'), delete: on('delete'), read: on('read') };
}

/**
 * The leaked-ENI sweeper's EC2 calls, paced like every other. Bounded: an ENI
 * that keeps refusing deletion is reported and the sweep goes on with the
 * others; a listing that keeps failing fails this sweep, and the Schedule's
 * next run tries again.
 */
export function pacedSweeperEc2() {
  const queue = (api: Ec2Api) => ec2TaskQueue(workflowInfo().taskQueue, api);
  return {
    read: proxyActivities<SweeperEc2Activities>({ ...EC2_CALL, scheduleToCloseTimeout: '10m', taskQueue: queue('read') }),
    delete: proxyActivities<Pick<Ec2Activities, 'deleteEni'>>({ ...EC2_CALL, retry: { ...EC2_CALL.retry, maximumAttempts: 6 }, taskQueue: queue('delete') }),
  };
}

/** Which NodeENIs exist, for the sweeper; a Kubernetes API that stays away fails the sweep. */
export const sweeperKube = proxyActivities<SweeperKubeActivities>({
  startToCloseTimeout: '60s',
  scheduleToCloseTimeout: '10m',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
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

/**
 * A child's Kubernetes Events as local activities: recorded by the worker running the workflow,
 * with no activity task for the server to match and no three history events (a marker instead).
 * Safe to repeat: an Event's name is derived from its id, so a retry updates the same Event.
 * Beyond `localRetryThreshold` the retries wait on a workflow timer, as a regular activity's would.
 */
export const kubeEventsLocal = proxyLocalActivities<Pick<KubeActivities, 'recordEvent' | 'recordEvents'>>({
  startToCloseTimeout: '10s',
  localRetryThreshold: '10s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const devicePluginStarter = proxyActivities<DevicePluginStarterActivities>({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export const childStatus = proxyActivities<ChildStatusActivities>({
  startToCloseTimeout: '60s',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * Starts the entity's children. Bounded, so a pass cannot wait forever on it: the children it may
 * have started stay recorded, and the children check finds those that never started (ChildNotFound).
 */
export const childStarter = proxyActivities<ChildStarterActivities>({
  startToCloseTimeout: '60s',
  scheduleToCloseTimeout: '5m',
  heartbeatTimeout: '10s',
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
    // An agent killed mid-step is noticed in seconds (the worker heartbeats for us), not after a minute.
    heartbeatTimeout: '10s',
    retry: { initialInterval: '500ms', backoffCoefficient: 1.5, maximumInterval: '10s', maximumAttempts: 60 },
  });
}
