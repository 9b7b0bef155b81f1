// The fault proxy (sandbox/ec2/fault-proxy.ts) as a process of its own, so
// that the benchmark's busy process (a thousand simulated nodes) does not
// delay the EC2 calls it forwards, and its CPU and memory can be measured.
// Prints {"endpoint": "..."} once listening; SIGTERM stops it.
import { startFaultProxy } from '../sandbox/ec2/fault-proxy.js';

const target = process.env.MOTO_ENDPOINT;
if (!target) throw new Error('MOTO_ENDPOINT is required');
const proxy = await startFaultProxy({ target });
process.stdout.write(`${JSON.stringify({ endpoint: proxy.endpoint })}\n`);
const stop = () => void proxy.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
