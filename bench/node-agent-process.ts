// The benchmark's one real node-agent process: the production agent
// (workers/node-agent-main.ts, with its production Worker settings) on a
// simulated host, so that its resident memory can be measured. Unlike the
// sandbox's sim-node-agent.ts it polls nothing itself: the benchmark's fleet
// poller writes the instance's attached ENIs to its stdin, one JSON array
// (AttachedEni[]) per line, whenever they change, and the host's PCI bus is
// made to match (sim-hypervisor.ts applyAttachments). No EC2 client, fake
// kubelet or pod runner is loaded, so the process holds little more than the agent.
import { createInterface } from 'node:readline';
import { applyAttachments, simulatedHost, type AttachedEni } from '../sandbox/sim-hypervisor.js';
import { runNodeAgent } from '../workers/node-agent-main.js';

const primaryMac = process.env.SIM_PRIMARY_MAC;
if (!primaryMac) throw new Error('SIM_PRIMARY_MAC is required');
const host = simulatedHost(primaryMac);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  try {
    applyAttachments(host, JSON.parse(line) as AttachedEni[]);
  } catch (err) {
    process.stderr.write(`${JSON.stringify({ level: 'ERROR', message: 'applying attachments failed', error: String(err) })}\n`);
  }
});

await runNodeAgent({ host, onStop: async () => lines.close() });
