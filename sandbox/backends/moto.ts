// moto's EC2 emulator as a real server process on a free loopback port.
import { TOOL, freePort, requireTool, startProcess, waitUntil } from './tools.js';

export interface MotoServer {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startMoto(opts: { echo?: boolean } = {}): Promise<MotoServer> {
  const port = await freePort();
  const proc = startProcess('moto', requireTool(TOOL.motoServer), ['-H', '127.0.0.1', '-p', String(port)], { echo: opts.echo });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitUntil('moto_server', async () => (await fetch(`${endpoint}/moto-api/`)).ok, { timeoutMs: 60_000, proc });
  return { endpoint, stop: () => proc.stop() };
}
