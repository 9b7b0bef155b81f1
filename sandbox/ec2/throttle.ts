// EC2 request-rate throttling for the fault proxy (fault-proxy.ts): the token
// bucket model, the action categories with their figures, and the time the
// buckets alone force on a given set of calls.
//
// Source of the model and of every figure below: AWS's page "Request
// throttling for the Amazon EC2 API" (EC2 Developer Guide, ec2-api-throttling,
// the section on request token bucket sizes and refill rates). In short, as
// modelled here:
//   - buckets are per account and Region, and per API action: every action has
//     its own bucket, which only its category (or the action's own entry)
//     sizes; a throttled call on one action leaves every other action alone;
//   - a call takes one token; with none left it fails with RequestLimitExceeded
//     (the proxy answers HTTP 503, as EC2 does) and takes nothing;
//   - a bucket starts full, refills continuously at its rate and never holds
//     more than its capacity.
// Left out: the console's own non-mutating bucket (the proxy sees no console
// traffic) and resource rate limiting (RunInstances, StartInstances,
// StopInstances and TerminateInstances also spend one token per instance from
// a second bucket). Of the doc's per-action ("uncategorized") figures, those
// of the ENI, instance, address, tag, volume and snapshot actions are carried
// (AWS_ACTION_LIMITS); any other action gets its category's figures.
import { z } from 'zod';

export const THROTTLE_CATEGORIES = ['nonMutating', 'unfilteredNonMutating', 'mutating', 'resourceIntensive'] as const;
/**
 * - `nonMutating`: Describe*, Get*, List*, Search*;
 * - `unfilteredNonMutating`: the doc's short list of expensive Describe calls
 *   when sent with no filter, no ID list and no pagination (a smaller bucket);
 * - `mutating`: everything else;
 * - `resourceIntensive`: the doc's list of costly mutating calls.
 */
export type ThrottleCategory = (typeof THROTTLE_CATEGORIES)[number];

const positive = z.number().finite().positive();
export const bucketLimitSchema = z
  .object({
    /** Tokens a full bucket holds (the largest burst); at least 1. */
    capacity: z.number().finite().min(1),
    /** Tokens added per second, continuously. */
    refillPerSecond: positive,
  })
  .strict();
export type BucketLimit = z.infer<typeof bucketLimitSchema>;

/** An EC2 action name as it appears in `Action=`. */
export const actionNameSchema = z.string().regex(/^[A-Z][A-Za-z0-9]*$/, 'an EC2 action name such as CreateNetworkInterface');

const categoriesShape = <T extends z.ZodType>(limit: T) =>
  z.object(Object.fromEntries(THROTTLE_CATEGORIES.map((c) => [c, limit])) as Record<ThrottleCategory, T>).strict();

export const throttleSettingsSchema = z
  .object({
    /** Off: every call goes through and no bucket is kept. */
    enabled: z.boolean(),
    categories: categoriesShape(bucketLimitSchema),
    /** Per-action figures; they replace the category's for that action's buckets. */
    actions: z.record(actionNameSchema, bucketLimitSchema).optional(),
  })
  .strict();
export type ThrottleSettings = z.infer<typeof throttleSettingsSchema>;

export const THROTTLE_PRESETS = ['aws', 'off'] as const;
export type ThrottlePreset = (typeof THROTTLE_PRESETS)[number];

/**
 * A change to the settings (POST /__faults/throttle): start from `preset` when
 * given, else from the current settings, then apply the rest. A category takes
 * either figure alone; an action entry is complete, or null to drop it.
 */
export const throttleUpdateSchema = z
  .object({
    preset: z.enum(THROTTLE_PRESETS).optional(),
    enabled: z.boolean().optional(),
    categories: categoriesShape(bucketLimitSchema.partial()).partial().optional(),
    actions: z.record(actionNameSchema, bucketLimitSchema.nullable()).optional(),
  })
  .strict();
export type ThrottleUpdate = z.infer<typeof throttleUpdateSchema>;

// ---- the figures (source: see the head of this file) --------------------------

const AWS_CATEGORY_LIMITS: Record<ThrottleCategory, BucketLimit> = {
  nonMutating: { capacity: 100, refillPerSecond: 20 },
  unfilteredNonMutating: { capacity: 50, refillPerSecond: 10 },
  mutating: { capacity: 50, refillPerSecond: 5 },
  resourceIntensive: { capacity: 50, refillPerSecond: 5 },
};

const limit = (capacity: number, refillPerSecond: number): BucketLimit => ({ capacity, refillPerSecond });

/** The doc's actions with their own figures, as far as ENIs, instances, addresses, tags, volumes and snapshots go. */
const AWS_ACTION_LIMITS: Record<string, BucketLimit> = {
  AssignIpv6Addresses: limit(100, 5),
  AssignPrivateIpAddresses: limit(100, 5),
  AssociateIamInstanceProfile: limit(100, 5),
  CreateLaunchTemplateVersion: limit(100, 5),
  CreateNetworkInterface: limit(100, 5),
  CreateSnapshot: limit(100, 5),
  CreateSnapshots: limit(100, 5),
  CreateTags: limit(100, 10),
  CreateVolume: limit(100, 5),
  DeleteNetworkInterface: limit(100, 5),
  DeleteSnapshot: limit(100, 5),
  DeleteTags: limit(100, 10),
  DeleteVolume: limit(100, 5),
  DescribeSecurityGroupReferences: limit(20, 5),
  DescribeStaleSecurityGroups: limit(20, 5),
  DisassociateIamInstanceProfile: limit(100, 5),
  ModifyInstanceMetadataOptions: limit(100, 5),
  ModifyLaunchTemplate: limit(100, 5),
  ModifyNetworkInterfaceAttribute: limit(100, 5),
  RunInstances: limit(5, 2),
  StartInstances: limit(5, 2),
  TerminateInstances: limit(100, 5),
  UnassignPrivateIpAddresses: limit(100, 5),
};

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** EC2's documented request-rate limits, on. */
export const AWS_THROTTLE: ThrottleSettings = deepFreeze({
  enabled: true,
  categories: AWS_CATEGORY_LIMITS,
  actions: AWS_ACTION_LIMITS,
});

/** No throttling (the proxy's default); the figures stay those of AWS_THROTTLE for when it is switched on. */
export const OFF: ThrottleSettings = deepFreeze({ ...structuredClone(AWS_THROTTLE), enabled: false });

export function throttlePreset(name: ThrottlePreset): ThrottleSettings {
  return structuredClone(name === 'aws' ? AWS_THROTTLE : OFF);
}

/** The settings after `update` (see throttleUpdateSchema). */
export function mergeThrottleSettings(current: ThrottleSettings, update: ThrottleUpdate): ThrottleSettings {
  const base = update.preset !== undefined ? throttlePreset(update.preset) : structuredClone(current);
  const categories = { ...base.categories };
  for (const c of THROTTLE_CATEGORIES) categories[c] = { ...categories[c], ...stripUndefined(update.categories?.[c] ?? {}) };
  const actions = { ...(base.actions ?? {}) };
  for (const [action, value] of Object.entries(update.actions ?? {})) {
    if (value === null) delete actions[action];
    else actions[action] = value;
  }
  return throttleSettingsSchema.parse({ enabled: update.enabled ?? base.enabled, categories, actions });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---- classification ------------------------------------------------------------

/** Every rule that puts an action in a category, in one place (source: the head of this file). */
const CLASSIFICATION = {
  /** Name prefixes of the calls that only read. */
  nonMutatingPrefixes: ['Describe', 'Get', 'List', 'Search'],
  /** Calls that use the smaller bucket when neither filtered nor paginated. */
  unfilteredSubset: new Set([
    'DescribeInstances',
    'DescribeInstanceStatus',
    'DescribeNetworkInterfaces',
    'DescribeSecurityGroups',
    'DescribeSnapshots',
    'DescribeSpotInstanceRequests',
    'DescribeVolumes',
  ]),
  /** Mutating calls with a category of their own. */
  resourceIntensive: new Set([
    'AcceptVpcPeeringConnection',
    'AuthorizeSecurityGroupIngress',
    'CancelSpotInstanceRequests',
    'CreateKeyPair',
    'CreateVpcPeeringConnection',
    'DeleteVpcPeeringConnection',
    'RejectVpcPeeringConnection',
    'RequestSpotInstances',
    'RevokeSecurityGroupIngress',
  ]),
  /**
   * Parameters that filter or paginate a Describe call: pagination, and any
   * list parameter (`Filter.1.Name`, `NetworkInterfaceId.1`, `GroupName.1`,
   * `OwnerId.1` …). For these calls every top-level list narrows the result.
   */
  narrowingParam: /^(MaxResults|NextToken)$|^[A-Za-z]+\.\d+(\.|$)/,
};

export interface ThrottleCall {
  action: string;
  params: URLSearchParams;
}

export interface Classification {
  category: ThrottleCategory;
  /** The bucket's key within an account and Region: `Action:category`. */
  bucket: string;
}

export const isNonMutating = (action: string): boolean => CLASSIFICATION.nonMutatingPrefixes.some((p) => action.startsWith(p));

/** The category of `action` when it is sent filtered or paginated (`narrowed`) or not. */
export function actionCategory(action: string, narrowed: boolean): ThrottleCategory {
  if (isNonMutating(action)) return !narrowed && CLASSIFICATION.unfilteredSubset.has(action) ? 'unfilteredNonMutating' : 'nonMutating';
  return CLASSIFICATION.resourceIntensive.has(action) ? 'resourceIntensive' : 'mutating';
}

export function classify(call: ThrottleCall): Classification {
  let narrowed = false;
  for (const key of call.params.keys()) {
    if (CLASSIFICATION.narrowingParam.test(key)) {
      narrowed = true;
      break;
    }
  }
  const category = actionCategory(call.action, narrowed);
  return { category, bucket: bucketKey(call.action, category) };
}

export const bucketKey = (action: string, category: ThrottleCategory): string => `${action}:${category}`;

/**
 * `Action:category` back into its parts. A bare action name stands for the
 * action's filtered (larger) bucket, which gives the smaller time bound.
 */
export function parseBucketKey(key: string): { action: string; category: ThrottleCategory } {
  const sep = key.indexOf(':');
  if (sep < 0) return { action: key, category: actionCategory(key, true) };
  const action = key.slice(0, sep);
  const category = key.slice(sep + 1);
  if (!(THROTTLE_CATEGORIES as readonly string[]).includes(category)) throw new Error(`bucket "${key}": unknown category "${category}"`);
  return { action, category: category as ThrottleCategory };
}

/** The figures of a bucket: the action's own entry, else its category's. */
export function limitFor(settings: ThrottleSettings, action: string, category: ThrottleCategory): BucketLimit {
  return settings.actions?.[action] ?? settings.categories[category];
}

/** Buckets are kept per account and Region: `account/region`. */
export const scopeKey = (account: string, region: string): string => `${account}/${region}`;

// ---- lower bound ---------------------------------------------------------------

export interface LowerBoundOptions {
  /** Bucket state when the calls begin: full (default; as after a refill or a clear) or empty. */
  start?: 'full' | 'empty';
}

/**
 * The time the buckets alone force on serving these calls within one account
 * and Region, whatever else is slow: per bucket (calls − capacity) / refill
 * (calls / refill from empty), at least 0, and the largest of them, since the
 * buckets refill side by side. Keys are bucket keys (`Action:category`, as the
 * proxy reports in `served`) or bare action names. 0 when throttling is off.
 */
export function lowerBoundSeconds(callsByBucket: Record<string, number>, settings: ThrottleSettings, opts: LowerBoundOptions = {}): number {
  if (!settings.enabled) return 0;
  let worst = 0;
  for (const [key, calls] of Object.entries(callsByBucket)) {
    const { action, category } = parseBucketKey(key);
    const { capacity, refillPerSecond } = limitFor(settings, action, category);
    const upfront = opts.start === 'empty' ? 0 : capacity;
    worst = Math.max(worst, (calls - upfront) / refillPerSecond);
  }
  return worst;
}

/** lowerBoundSeconds over every account and Region (the proxy's `served`): the largest, as they too are independent. */
export function lowerBoundSecondsAll(
  callsByScope: Record<string, Record<string, number>>,
  settings: ThrottleSettings,
  opts: LowerBoundOptions = {},
): number {
  return Math.max(0, ...Object.values(callsByScope).map((calls) => lowerBoundSeconds(calls, settings, opts)));
}

// ---- the buckets ---------------------------------------------------------------

/** One bucket as GET /__faults/throttle reports it. */
export interface ThrottleBucketState {
  account: string;
  region: string;
  /** `Action:category`. */
  bucket: string;
  action: string;
  category: ThrottleCategory;
  capacity: number;
  refillPerSecond: number;
  /** Tokens in the bucket now (fractional: refill is continuous). */
  tokens: number;
}

export interface ThrottleDecision extends Classification {
  /** False: answer RequestLimitExceeded. */
  allowed: boolean;
  /** scopeKey(account, region). */
  scope: string;
}

interface Bucket {
  account: string;
  region: string;
  action: string;
  category: ThrottleCategory;
  tokens: number;
  /** When `tokens` was last brought up to date (ms, the clock's). */
  at: number;
}

// A token counts as whole when this close to 1: refill sums of binary fractions are not exact.
const WHOLE = 1 - 1e-9;

/** Token buckets per account, Region and bucket key; created full on first use. */
export class ThrottleBuckets {
  private buckets = new Map<string, Bucket>();
  private current: ThrottleSettings;

  /** `now` in milliseconds, monotonic. */
  constructor(settings: ThrottleSettings, private readonly now: () => number = () => performance.now()) {
    this.current = structuredClone(settings);
  }

  get settings(): ThrottleSettings {
    return structuredClone(this.current);
  }

  /** New settings; every bucket starts full again. */
  set(settings: ThrottleSettings): void {
    this.current = structuredClone(settings);
    this.refillAll();
  }

  /** Every bucket full again. */
  refillAll(): void {
    this.buckets.clear();
  }

  /** Classifies the call and, when throttling is on, takes a token from its bucket if it has one. */
  take(call: ThrottleCall & { account: string; region: string }): ThrottleDecision {
    const { category, bucket } = classify(call);
    const scope = scopeKey(call.account, call.region);
    if (!this.current.enabled) return { allowed: true, category, bucket, scope };
    const id = `${scope}/${bucket}`;
    const now = this.now();
    let b = this.buckets.get(id);
    if (!b) {
      b = { account: call.account, region: call.region, action: call.action, category, tokens: limitFor(this.current, call.action, category).capacity, at: now };
      this.buckets.set(id, b);
    }
    this.refill(b, now);
    const allowed = b.tokens >= WHOLE;
    if (allowed) b.tokens = Math.max(0, b.tokens - 1);
    return { allowed, category, bucket, scope };
  }

  /** Every bucket in use, with its tokens now. */
  snapshot(): ThrottleBucketState[] {
    const now = this.now();
    return [...this.buckets.values()].map((b) => {
      this.refill(b, now);
      const { capacity, refillPerSecond } = limitFor(this.current, b.action, b.category);
      return {
        account: b.account,
        region: b.region,
        bucket: bucketKey(b.action, b.category),
        action: b.action,
        category: b.category,
        capacity,
        refillPerSecond,
        tokens: b.tokens,
      };
    });
  }

  private refill(b: Bucket, now: number): void {
    const { capacity, refillPerSecond } = limitFor(this.current, b.action, b.category);
    b.tokens = Math.min(capacity, b.tokens + (Math.max(0, now - b.at) / 1000) * refillPerSecond);
    b.at = now;
  }
}
