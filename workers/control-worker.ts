// The control worker: the workflows plus the EC2 and Kubernetes activities.
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { KubeConfig } from '@kubernetes/client-node';
import { createEc2Activities } from '../activities/ec2/ec2-activities.js';
import { createKubeActivities } from '../activities/kube/kube-activities.js';
import { createDevicePluginKubeActivities } from '../activities/kube/device-plugin-activities.js';
import { createDevicePluginConfigMapActivities } from '../activities/kube/device-plugin-configmap.js';
import { createPodActivities } from '../activities/kube/pod-activities.js';
import { createDevicePluginStarter } from '../activities/temporal/device-plugin-starter.js';
import type { DevicePluginOptions } from '../common/workflow-api.js';
import { createChildStatusActivities } from '../activities/temporal/child-status.js';
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
}

export function controlWorkerSpec(deps: ControlWorkerDeps): WorkerSpec {
  return {
    taskQueue: deps.taskQueue,
    ...(deps.identity ? { identity: deps.identity } : {}),
    ...deps.workflows,
    activities: {
      ...createEc2Activities({ ec2: deps.ec2, pollMs: deps.ec2PollMs }),
      ...createKubeActivities({ kc: deps.kc }),
      ...createDevicePluginKubeActivities({ kc: deps.kc }),
      ...createDevicePluginConfigMapActivities({ kc: deps.kc }),
      ...createPodActivities({ kc: deps.kc }),
      ...createDevicePluginStarter({ taskQueue: deps.taskQueue, options: deps.devicePlugin }),
      ...createChildStatusActivities(),
    },
  };
}
