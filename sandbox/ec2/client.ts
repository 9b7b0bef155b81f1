// EC2 clients for the sandbox and tests: pointed at moto (or the fault proxy in
// front of it), with dummy credentials and an optional per-test moto account.
import { EC2Client } from '@aws-sdk/client-ec2';
import { randomInt } from 'node:crypto';

export const DEFAULT_REGION = 'us-east-1';
/** The account moto uses when a request names none. */
export const MOTO_DEFAULT_ACCOUNT = '123456789012';
export const MOTO_ACCOUNT_HEADER = 'x-moto-account-id';

export interface Ec2ClientOptions {
  endpoint: string;
  region?: string;
  /** 12-digit account id; moto keeps a separate world per account. */
  account?: string;
  /** Defaults to 1 so errors surface at once; raise it to exercise SDK retries. */
  maxAttempts?: number;
}

export function makeEc2Client(opts: Ec2ClientOptions): EC2Client {
  const ec2 = new EC2Client({
    endpoint: opts.endpoint,
    region: opts.region ?? DEFAULT_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: opts.maxAttempts ?? 1,
  });
  const account = opts.account;
  if (account !== undefined) {
    if (!/^\d{12}$/.test(account)) throw new Error(`account must be 12 digits, got "${account}"`);
    // Build step runs before signing, so the header is part of every attempt.
    ec2.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers[MOTO_ACCOUNT_HEADER] = account;
        return next(args);
      },
      { step: 'build', name: 'motoAccountHeader' },
    );
  }
  return ec2;
}

/** A random 12-digit account id (no leading zero), for per-test isolation in moto. */
export function randomAccountId(): string {
  return String(randomInt(1, 10)) + Array.from({ length: 11 }, () => String(randomInt(0, 10))).join('');
}
