// The control worker: the workflows plus the EC2 and Kubernetes activities.
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { DataConverter } from '@temporalio/common';
import type { KubeConfig } from '@kubernetes/client-node';
import { createEc2Activities } from '../activities/ec2/ec2-activities.js';
import { createKubeActivities } from '../activities/kube/kube-activities.js';
import { createSweeperEc2Activities } from '../activities/ec2/sweeper-activities.js';
import { createSweeperKubeActivities } from '../activities/kube/nodeeni-owners.js';
import { createDevicePluginKubeActivities } from '../activities/kube/device-plugin-activities.js';
import { createDevicePluginConfigMapActivities } from '../activities/kube/device-plugin-configmap.js';
import { createPodActivities } from '../activities/kube/pod-activities.js';
import { createDevicePluginStarter } from '../activities/temporal/device-plugin-starter.js';
import type { DevicePluginOptions } from '../common/workflow-api.js';
import { EC2_APIS, ec2TaskQueue } from '../common/names.js';
import { createChildStatusActivities } from '../activities/temporal/child-status.js';
import { createChildStarter } from '../activities/temporal/child-starter.js';
import type { WorkerSpec } from './bootstrap.js';
import type { WorkflowSource } from './workflow-source.js';

export interface ControlWorkerDeps {
  taskQueue: string;
  ec2: EC2Client;
  kc: KubeConfig;
  workflows: WorkflowSource;
  ec2PollMs?: number;
  identity?: string;
  devicePlugin: DevicePluginOptions;
  /** Task-queue rate of each mutating EC2 API (EC2 refills each API's bucket at its own rate). */
  ec2MutatingPerSecond?: number;
  /** Task-queue rate of the describes reconcile passes make. */
  ec2ReadPerSecond?: number;
  /** Workflows kept cached between their tasks (WORKFLOW_CACHE_SIZE); the SDK's default (sized by the heap) when omitted. */
  maxCachedWorkflows?: number;
  /** Overrides the system's data converter (workers/payload-codec.ts), e.g. a lower compression threshold in a test. */
  dataConverter?: DataConverter;
}

/** EC2's documented refill for mutating APIs, and a share of the describe bucket's 20 per second. */
export const DEFAULT_EC2_RATES = { mutatingPerSecond: 5, readPerSecond: 10 };

/**
 * The control worker's workers: one on the control queue (workflows, Kubernetes
 * activities, the waits), and one per EC2 task queue whose server-side rate
 * limit paces that API for every control worker together.
 */
export function controlWorkerSpecs(deps: ControlWorkerDeps): WorkerSpec[] {
  // The sweeper's listing runs on the paced read queue with the reconciler's describes.
  const ec2 = { ...createEc2Activities({ ec2: deps.ec2, pollMs: deps.ec2PollMs }), ...createSweeperEc2Activities({ ec2: deps.ec2 }) };
  const common = { ...(deps.identity ? { identity: deps.identity } : {}), ...(deps.dataConverter ? { dataConverter: deps.dataConverter } : {}) };
  const paced = EC2_APIS.map((api): WorkerSpec => ({
    taskQueue: ec2TaskQueue(deps.taskQueue, api),
    ...common,
    activities: ec2,
    maxTaskQueueActivitiesPerSecond: api === 'read' ? (deps.ec2ReadPerSecond ?? DEFAULT_EC2_RATES.readPerSecond) : (deps.ec2MutatingPerSecond ?? DEFAULT_EC2_RATES.mutatingPerSecond),
    maxConcurrentActivityTaskExecutions: 50,
  }));
  return [controlWorkerSpec(deps, ec2), ...paced];
}

function controlWorkerSpec(deps: ControlWorkerDeps, ec2: ReturnType<typeof createEc2Activities>): WorkerSpec {
  return {
    taskQueue: deps.taskQueue,
    ...(deps.identity ? { identity: deps.identity } : {}),
    ...(deps.dataConverter ? { dataConverter: deps.dataConverter } : {}),
    ...deps.workflows,
    ...(deps.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: deps.maxCachedWorkflows } : {}),
    activities: {
      // Also here: histories written before the EC2 queues existed schedule EC2 activities on this queue.
      ...ec2,
      ...createKubeActivities({ kc: deps.kc }),
      ...createDevicePluginKubeActivities({ kc: deps.kc }),
      ...createDevicePluginConfigMapActivities({ kc: deps.kc }),
      ...createPodActivities({ kc: deps.kc }),
      ...createDevicePluginStarter({ taskQueue: deps.taskQueue, options: deps.devicePlugin }),
      ...createChildStatusActivities(),
      ...createChildStarter(),
      ...createSweeperKubeActivities({ kc: deps.kc }),
    },
  };
}
