// The one table of EC2 error codes and how the workflows treat them.
// AWS SDK errors must be converted explicitly: Temporal would otherwise type
// them by class name (EC2ServiceException) and nonRetryableErrorTypes could
// never match an EC2 code (shared/reference/temporal-notes.md finding 3).
import { Context } from '@temporalio/activity';
import { ApplicationFailure, type MetricMeter } from '@temporalio/common';
import { ec2Operation, nodeEniMetrics, THROTTLING_CODES } from '../../common/metrics.js';

type Retry = 'retryable' | 'non-retryable';

const EC2_CODES: Record<string, Retry> = {
  // Throttling and service-side trouble: back off and try again.
  RequestLimitExceeded: 'retryable',
  Throttling: 'retryable',
  ThrottlingException: 'retryable',
  RequestThrottled: 'retryable',
  InternalError: 'retryable',
  InternalFailure: 'retryable',
  ServiceUnavailable: 'retryable',
  Unavailable: 'retryable',
  // Mid-transition states: wait and describe again.
  IncorrectState: 'retryable',
  'InvalidNetworkInterface.InUse': 'retryable',
  // Eventual consistency right after a create; callers that delete treat it as done.
  'InvalidNetworkInterfaceID.NotFound': 'retryable',
  'InvalidAttachmentID.NotFound': 'retryable',
  // Our own code for a device-index race: re-read the indices and pick again.
  DeviceIndexInUse: 'retryable',
  // Bad spec, quota, capacity or permissions: retrying cannot help.
  'InvalidInstanceID.NotFound': 'non-retryable',
  'InvalidSubnetID.NotFound': 'non-retryable',
  'InvalidGroup.NotFound': 'non-retryable',
  'InvalidSecurityGroupID.NotFound': 'non-retryable',
  InvalidParameterValue: 'non-retryable',
  InvalidParameterCombination: 'non-retryable',
  OperationNotPermitted: 'non-retryable',
  AttachmentLimitExceeded: 'non-retryable',
  NetworkInterfaceLimitExceeded: 'non-retryable',
  InsufficientFreeAddressesInSubnet: 'non-retryable',
  IdempotentParameterMismatch: 'non-retryable',
  UnauthorizedOperation: 'non-retryable',
  AuthFailure: 'non-retryable',
  'InvalidClientTokenId': 'non-retryable',
};

export function isRetryableEc2Code(code: string, fault?: 'client' | 'server'): boolean {
  const known = EC2_CODES[code];
  if (known) return known === 'retryable';
  // Unknown codes: server faults are transient, client faults are our request.
  return fault !== 'client';
}

interface AwsLikeError {
  name?: string;
  Code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/** The EC2 error code of an SDK error, or undefined for network-level failures. */
export function ec2ErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as AwsLikeError;
  if (e.$metadata === undefined) return undefined;
  return e.Code ?? e.name;
}

export function isEc2Code(err: unknown, ...codes: string[]): boolean {
  const code = ec2ErrorCode(err);
  return code !== undefined && codes.includes(code);
}

/** Codes that say "too fast" (THROTTLING_CODES) are retried after a jittered back-off, so throttled callers do not come back in step. */
const THROTTLE_BACKOFF = { baseMs: 500, maxMs: 20_000 };

/**
 * Temporal is the one retry layer (the SDK client makes one attempt); its
 * retry intervals have no jitter, so a throttled activity names its own next
 * delay: exponential in the attempt, drawn uniformly from half to all of it.
 */
export function throttleRetryDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(THROTTLE_BACKOFF.maxMs, THROTTLE_BACKOFF.baseMs * 2 ** Math.min(attempt - 1, 10));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** The current activity's meter (its tags: activityType, taskQueue, namespace); none outside an activity. */
function currentMeter(): MetricMeter | undefined {
  try {
    return Context.current().metricMeter;
  } catch {
    return undefined;
  }
}

function currentAttempt(): number {
  try {
    return Context.current().info.attempt;
  } catch {
    return 1; // not inside an activity
  }
}

const DEVICE_INDEX_IN_USE = /already has an interface attached at device index/i;

/**
 * Converts any error thrown by an EC2 call into an ApplicationFailure typed by
 * its EC2 code, and counts it (nodeeni_ec2_errors_total, and
 * nodeeni_ec2_throttled_total for throttling) by the action `context` starts with.
 */
export function toEc2Failure(err: unknown, context: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as AwsLikeError;
  let code = ec2ErrorCode(err);
  const message = `${context}: ${e.message ?? String(err)}`;
  const meter = currentMeter();
  if (code === undefined) {
    // Connection reset, DNS, timeouts: transient by nature.
    if (meter) nodeEniMetrics(meter).ec2Error(ec2Operation(context), 'EC2Unreachable');
    return ApplicationFailure.create({ type: 'EC2Unreachable', message, nonRetryable: false, cause: err instanceof Error ? err : undefined });
  }
  if (code === 'InvalidParameterValue' && DEVICE_INDEX_IN_USE.test(e.message ?? '')) code = 'DeviceIndexInUse';
  if (meter) nodeEniMetrics(meter).ec2Error(ec2Operation(context), code);
  return ApplicationFailure.create({
    type: code,
    message,
    nonRetryable: !isRetryableEc2Code(code, e.$fault),
    nextRetryDelay: THROTTLING_CODES.has(code) ? throttleRetryDelayMs(currentAttempt()) : undefined,
    details: [{ code, httpStatus: e.$metadata?.httpStatusCode, requestId: e.$metadata?.requestId }],
  });
}

/** Runs one EC2 call and rethrows its failure typed by EC2 code. */
export async function ec2Call<T>(context: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toEc2Failure(err, context);
  }
}
