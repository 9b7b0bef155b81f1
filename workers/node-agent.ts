// Entry point of the node agent (a DaemonSet): the real host under HOST_ROOT.
import { createRealHost } from '../host/real-host.js';
import { runNodeAgent } from './node-agent-main.js';

await runNodeAgent({ makeHost: (root) => createRealHost(root) });
