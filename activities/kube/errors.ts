// Kubernetes API errors as Temporal failures: 4xx other than conflict and
// throttling are final; everything else (5xx, 409, 429, no answer) is retried.
import { ApiException } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';

export function httpCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export function toKubeFailure(err: unknown, context: string): ApplicationFailure {
  const code = httpCode(err);
  const message = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  const retryable = code === undefined || code >= 500 || code === 409 || code === 429;
  return ApplicationFailure.create({ type: code ? `KubeHTTP${code}` : 'KubeUnreachable', message, nonRetryable: !retryable });
}

export async function kubeCall<T>(context: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toKubeFailure(err, context);
  }
}
