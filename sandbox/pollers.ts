// Waits until a worker polls each task queue: the point from which work sent there runs.
import { Connection } from '@temporalio/client';
// A CommonJS package: its namespaces come through the default export under Node's ESM loader.
import proto from '@temporalio/proto';

const { TaskQueueType } = proto.temporal.api.enums.v1;
import { waitUntil } from './backends/tools.js';

export interface QueueToWatch {
  name: string;
  kind: 'workflow' | 'activity';
}

export async function waitForPollers(address: string, namespace: string, queues: QueueToWatch[], timeoutMs = 120_000): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    for (const q of queues) {
      await waitUntil(`a worker polling task queue ${q.name}`, async () => {
        const res = await connection.workflowService.describeTaskQueue({
          namespace,
          taskQueue: { name: q.name },
          taskQueueType: q.kind === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        });
        return (res.pollers ?? []).length > 0;
      }, { timeoutMs });
    }
  } finally {
    await connection.close();
  }
}
