// A Worker for a test's own fixture workflows (test/fixtures/<name>/workflows.ts) on the shared
// Temporal server; its connection doubles as a client's where eager workflow start needs it.
import { NativeConnection, Worker } from '@temporalio/worker';
import { getBackends } from './backends.js';

export interface FixtureWorker {
  connection: NativeConnection;
  stop(): Promise<void>;
}

export async function startFixtureWorker(taskQueue: string, workflowsPath: string): Promise<FixtureWorker> {
  const { temporalAddress, temporalNamespace } = getBackends();
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const worker = await Worker.create({ connection, namespace: temporalNamespace, taskQueue, workflowsPath });
  const running = worker.run();
  return {
    connection,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
