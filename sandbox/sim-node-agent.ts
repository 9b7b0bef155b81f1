// A node agent process on a simulated host, for the sandbox: the production
// agent's worker, but its Host is the kernel model of one EC2 instance.
import { KubeConfig } from '@kubernetes/client-node';
import { makeEc2Client } from './ec2/client.js';
import { startFakeKubelet } from './fake-kubelet.js';
import { startPodRunner } from './pod-runner.js';
import { createSimulatedNode } from './simulated-node.js';
import { runNodeAgent } from '../workers/node-agent-main.js';

const instanceId = process.env.SIM_INSTANCE_ID;
const primaryMac = process.env.SIM_PRIMARY_MAC;
const endpoint = process.env.AWS_ENDPOINT_URL_EC2;
if (!instanceId || !primaryMac || !endpoint) throw new Error('SIM_INSTANCE_ID, SIM_PRIMARY_MAC and AWS_ENDPOINT_URL_EC2 are required');

const node = await createSimulatedNode({ ec2: makeEc2Client({ endpoint, region: process.env.AWS_REGION, maxAttempts: 3 }), instanceId, primaryMac, pollMs: 300 });
// The node's kubelet, as far as the SR-IOV device plugin is concerned: its pod, restarts, allocatable.
const kc = new KubeConfig();
kc.loadFromDefault();
const kubelet = await startFakeKubelet({ kc, nodeName: process.env.NODE_NAME ?? '', host: node.host });
// …and for every other pod scheduled here: cgroups, processes, Running status.
const pods = startPodRunner({ kc, nodeName: process.env.NODE_NAME ?? '', host: node.host, skip: (p) => p.metadata?.labels?.app === 'sriovdp' });
await runNodeAgent({
  host: node.host,
  onStop: async () => {
    await pods.stop();
    await kubelet.stop();
    await node.stop();
  },
});
