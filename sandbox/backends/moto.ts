// moto's EC2 emulator as a real server process on a free loopback port.
import { TOOL, freePort, requireTool, startProcess, waitUntil } from './tools.js';

export interface MotoServer {
  endpoint: string;
  stop(): Promise<void>;
}

export interface MotoOptions {
  echo?: boolean;
  /**
   * A Python script that starts moto_server itself, with moto_server's
   * arguments, after changing moto in its own process (the benchmark's
   * bench/moto-indexed-tags.py); run with the tools' Python.
   */
  wrapper?: string;
}

export async function startMoto(opts: MotoOptions = {}): Promise<MotoServer> {
  const port = await freePort();
  const args = ['-H', '127.0.0.1', '-p', String(port)];
  const proc = opts.wrapper
    ? startProcess('moto', requireTool(TOOL.python), [opts.wrapper, ...args], { echo: opts.echo })
    : startProcess('moto', requireTool(TOOL.motoServer), args, { echo: opts.echo });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitUntil('moto_server', async () => (await fetch(`${endpoint}/moto-api/`)).ok, { timeoutMs: 60_000, proc });
  return { endpoint, stop: () => proc.stop() };
}
