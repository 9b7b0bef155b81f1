// Environment configuration, validated before any client is created: one
// clear error per bad value (the original hung creating a client before it
// noticed NODE_NAME was missing).
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_CONTROL_TASK_QUEUE, DEFAULT_SWEEPER_SCHEDULE_ID } from '../common/names.js';
import { DEFAULT_DEVICE_PLUGIN_CONFIG_PATH, DEFAULT_DEVICE_PLUGIN_NAMESPACES, DEFAULT_DEVICE_PLUGIN_SELECTORS } from '../common/device-plugin.js';
import { validateDevicePluginConfigPath } from '../activities/node/device-plugin-activities.js';

const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a lowercase DNS subdomain (a Kubernetes node name)');

const logLevel = z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO');

const trueFalse = z.enum(['true', 'false'], { error: 'must be true or false' });

/** An optional variable; set but empty counts as unset (what a template renders for "no value"). */
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/** A file this process can read; `check` gets its content and returns a problem or undefined. */
const readableFile = (check?: (content: Buffer) => string | undefined) =>
  z.string().superRefine((p, ctx) => {
    const problem = (() => {
      if (!path.isAbsolute(p)) return `must be an absolute path (got "${p}")`;
      if (!existsSync(p)) return `${p} does not exist`;
      if (!statSync(p).isFile()) return `${p} is not a file`;
      try {
        accessSync(p, fsConstants.R_OK);
      } catch {
        return `${p} is not readable by this process (uid ${process.getuid?.() ?? '?'})`;
      }
      return check?.(readFileSync(p));
    })();
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

function certificates(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

const pemCertificate = readableFile((content) => {
  let certs: X509Certificate[];
  try {
    certs = certificates(content);
  } catch (err) {
    return `is not a valid PEM certificate (${(err as Error).message})`;
  }
  if (certs.length === 0) return 'is not a PEM certificate (no "BEGIN CERTIFICATE" block)';
  const expired = certs.find((c) => new Date(c.validTo).getTime() < Date.now());
  if (expired && certs.length === 1) return `the certificate ${expired.subject.replace(/\n/g, ', ')} expired on ${new Date(expired.validTo).toISOString()}`;
  return undefined;
});

const pemPrivateKey = readableFile((content) => {
  try {
    createPrivateKey(content);
    return undefined;
  } catch {
    return 'is not an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)';
  }
});

const apiKeyFile = readableFile((content) => (content.toString('utf8').trim() === '' ? 'is empty' : undefined));

/** A DNS name the server's certificate is valid for. */
const serverName = z.string().regex(/^(?=.{1,253}$)[A-Za-z0-9*]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/, 'must be a DNS name (the name in the server certificate)');

/** Standard Temporal variables the TypeScript SDK cannot honour: refused, not silently ignored. */
const unsupported = (why: string) => optional(z.string().refine(() => false, why));

/**
 * Connection to Temporal, for every component and the CLI. The names are the
 * ones the `temporal` CLI and Temporal's environment configuration read, so
 * one set of variables (one Secret) serves both; TEMPORAL_API_KEY_FILE is ours.
 */
export const temporalConnectionFields = {
  TEMPORAL_ADDRESS: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:/\s]+)(:\d{1,5})?$/, 'must be host:port, without a scheme').default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** true/false; unset: TLS when any TLS variable or an API key is set. */
  TEMPORAL_TLS: optional(trueFalse),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: optional(pemCertificate),
  TEMPORAL_TLS_CLIENT_CERT_PATH: optional(pemCertificate),
  TEMPORAL_TLS_CLIENT_KEY_PATH: optional(pemPrivateKey),
  TEMPORAL_TLS_SERVER_NAME: optional(serverName),
  TEMPORAL_API_KEY: optional(z.string().trim().min(1)),
  TEMPORAL_API_KEY_FILE: optional(apiKeyFile),
  TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: optional(z.string().refine((v) => v === 'false', 'not supported by the TypeScript SDK: set TEMPORAL_TLS_SERVER_NAME to the name in the server certificate')),
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: unsupported('not supported: mount the CA and set TEMPORAL_TLS_SERVER_CA_CERT_PATH'),
  TEMPORAL_TLS_CLIENT_CERT_DATA: unsupported('not supported: mount the certificate and set TEMPORAL_TLS_CLIENT_CERT_PATH'),
  TEMPORAL_TLS_CLIENT_KEY_DATA: unsupported('not supported: mount the key and set TEMPORAL_TLS_CLIENT_KEY_PATH'),
};

export interface TemporalConnectionEnv {
  TEMPORAL_ADDRESS: string;
  TEMPORAL_NAMESPACE: string;
  TEMPORAL_TLS?: 'true' | 'false';
  TEMPORAL_TLS_SERVER_CA_CERT_PATH?: string;
  TEMPORAL_TLS_CLIENT_CERT_PATH?: string;
  TEMPORAL_TLS_CLIENT_KEY_PATH?: string;
  TEMPORAL_TLS_SERVER_NAME?: string;
  TEMPORAL_API_KEY?: string;
  TEMPORAL_API_KEY_FILE?: string;
}

const TLS_SETTINGS = ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_SERVER_NAME'] as const;

/** Cross-variable checks run even when single values failed (zod skips them otherwise), so every problem shows at once. */
const ALWAYS = { when: () => true };

/** What needs more than one variable; the values may be unvalidated strings here. */
export function checkTemporalConnection(env: Partial<TemporalConnectionEnv>, ctx: z.RefinementCtx): void {
  const issue = (name: string, message: string) => ctx.addIssue({ code: 'custom', path: [name], message });
  const set = (name: keyof TemporalConnectionEnv) => typeof env[name] === 'string' && env[name] !== '';
  if (set('TEMPORAL_TLS_CLIENT_CERT_PATH') && !set('TEMPORAL_TLS_CLIENT_KEY_PATH')) issue('TEMPORAL_TLS_CLIENT_KEY_PATH', 'required with TEMPORAL_TLS_CLIENT_CERT_PATH (a client certificate needs its private key)');
  if (set('TEMPORAL_TLS_CLIENT_KEY_PATH') && !set('TEMPORAL_TLS_CLIENT_CERT_PATH')) issue('TEMPORAL_TLS_CLIENT_CERT_PATH', 'required with TEMPORAL_TLS_CLIENT_KEY_PATH (a private key needs its client certificate)');
  if (set('TEMPORAL_TLS_CLIENT_CERT_PATH') && set('TEMPORAL_TLS_CLIENT_KEY_PATH')) {
    try {
      const cert = certificates(readFileSync(env.TEMPORAL_TLS_CLIENT_CERT_PATH!))[0];
      const key = createPrivateKey(readFileSync(env.TEMPORAL_TLS_CLIENT_KEY_PATH!));
      if (cert && !cert.checkPrivateKey(key)) issue('TEMPORAL_TLS_CLIENT_KEY_PATH', 'does not belong to the certificate in TEMPORAL_TLS_CLIENT_CERT_PATH');
    } catch {
      // Unreadable or malformed: already reported for the variable itself.
    }
  }
  if (set('TEMPORAL_API_KEY') && set('TEMPORAL_API_KEY_FILE')) issue('TEMPORAL_API_KEY_FILE', 'set only one of TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE');
  if (env.TEMPORAL_TLS === 'false') {
    for (const name of TLS_SETTINGS) if (set(name)) issue(name, 'is set but TEMPORAL_TLS=false: remove one of them');
    for (const name of ['TEMPORAL_API_KEY', 'TEMPORAL_API_KEY_FILE'] as const) {
      if (set(name)) issue(name, 'an API key is only sent over TLS (Temporal Cloud requires it), but TEMPORAL_TLS=false');
    }
  }
}

/** TLS is on when asked for, or implied by any TLS setting or an API key. */
export function temporalTlsEnabled(env: TemporalConnectionEnv): boolean {
  if (env.TEMPORAL_TLS !== undefined) return env.TEMPORAL_TLS === 'true';
  return TLS_SETTINGS.some((n) => env[n] !== undefined) || env.TEMPORAL_API_KEY !== undefined || env.TEMPORAL_API_KEY_FILE !== undefined;
}

/** The CLI's environment: only the connection. */
export const temporalClientConfigSchema = z.object(temporalConnectionFields).superRefine(checkTemporalConnection, ALWAYS);

const common = {
  ...temporalConnectionFields,
  LOG_LEVEL: logLevel,
  METRICS_BIND_ADDRESS: z.string().regex(/^[^:]+:\d+$/, 'must be host:port').optional(),
};

const commaList = (fallback: readonly string[]) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? [...fallback] : v.split(',').map((x) => x.trim()).filter(Boolean)));

export const controlConfigSchema = z.object({
  ...common,
  CONTROL_TASK_QUEUE: z.string().min(1).default(DEFAULT_CONTROL_TASK_QUEUE),
  AWS_REGION: z.string().min(1, 'AWS_REGION is required'),
  DEVICE_PLUGIN_NAMESPACES: commaList(DEFAULT_DEVICE_PLUGIN_NAMESPACES).pipe(z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'namespace names are DNS labels')).min(1)),
  DEVICE_PLUGIN_SELECTORS: commaList(DEFAULT_DEVICE_PLUGIN_SELECTORS).pipe(z.array(z.string().regex(/^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*$/, 'selectors are key=value')).min(1)),
  DEVICE_PLUGIN_DEBOUNCE_MS: z.coerce.number().int().min(0).max(60_000).default(2000),
  DEVICE_PLUGIN_RESTART_TIMEOUT_SECONDS: z.coerce.number().int().min(5).max(3600).default(180),
  /** `namespace/name`: also mirror each node's config into this ConfigMap (key = node name). */
  DEVICE_PLUGIN_CONFIGMAP: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name')
    .transform((v) => ({ namespace: v.split('/')[0]!, name: v.split('/')[1]! }))
    .optional(),
  /**
   * Pace of each mutating EC2 API (CreateNetworkInterface, AttachNetworkInterface, …) for all control
   * workers together; EC2 refills each API's bucket at 5 per second. Lower it when other tools share the account.
   */
  EC2_MUTATING_CALLS_PER_SECOND: z.coerce.number().positive().max(1000).default(5),
  /** Pace of the describes reconcile passes make (EC2 refills DescribeNetworkInterfaces at 20 per second). */
  EC2_READ_CALLS_PER_SECOND: z.coerce.number().positive().max(1000).default(10),
  /**
   * Workflows kept in the control worker's memory between their tasks (Temporal's sticky cache). The
   * SDK's default grows with the V8 heap limit (about 2,000 on a large machine); each cached workflow
   * holds its own state (about 1 MiB), so this, not the cluster's size, bounds the worker's memory. Keep
   * it above the watcher's MAX_CONCURRENT_CHILDREN (100): an evicted workflow is replayed from its
   * history on its next task.
   */
  WORKFLOW_CACHE_SIZE: z.coerce.number().int().min(2).max(100_000).default(150),
  /** Create missing custom search attributes at start (needs operator rights on the namespace). */
  TEMPORAL_CREATE_SEARCH_ATTRIBUTES: trueFalse.default('false').transform((v) => v === 'true'),
  /** The watcher's CLUSTER_NAME: the leaked-ENI sweeper looks only at ENIs tagged with it. */
  CLUSTER_NAME: z.string().min(1).max(255).default('default'),
  /** The leaked-ENI sweeper's Schedule runs; false keeps it, paused (`nodeeni sweep` still works). */
  SWEEP_ENABLED: trueFalse.default('true').transform((v) => v === 'true'),
  SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).default(3600),
  /** ENIs younger than this are never swept (their owner may not be visible yet). */
  SWEEP_GRACE_SECONDS: z.coerce.number().int().min(60).max(30 * 86_400).default(1800),
  /** Scheduled sweeps only report what they would delete. */
  SWEEP_DRY_RUN: trueFalse.default('false').transform((v) => v === 'true'),
  /** One Schedule per installation: installations sharing a Temporal namespace need different IDs. */
  SWEEP_SCHEDULE_ID: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'letters, digits, ".", "_" and "-"').default(DEFAULT_SWEEPER_SCHEDULE_ID),
}).superRefine(checkTemporalConnection, ALWAYS);

export const watcherConfigSchema = z.object({
  ...common,
  CONTROL_TASK_QUEUE: z.string().min(1).default(DEFAULT_CONTROL_TASK_QUEUE),
  CLUSTER_NAME: z.string().min(1).max(255).default('default'),
  NODEENI_LABEL_SELECTOR: z.string().optional(),
  RESYNC_SECONDS: z.coerce.number().int().min(10).max(86_400).default(300),
  DETACH_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  NODE_AGENT_START_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  FAILURE_BACKOFF_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /** A provisioning not finished by then is undone and retried after back-off. */
  PROVISION_DEADLINE_SECONDS: z.coerce.number().int().min(30).max(86_400).default(900),
  /** Base URL of the Temporal UI (e.g. https://temporal.example.com): each NodeENI's status.workflowURL links to its workflow. */
  TEMPORAL_UI_URL: optional(z.string().url('must be a URL such as https://temporal-ui.example.com')),
  /** Provisioning and teardown children one NodeENI runs at once (Temporal's default limit is 2,000 pending children). */
  MAX_CONCURRENT_CHILDREN: z.coerce.number().int().min(1).max(1000).default(100),
  /** Rows in status.attachments; beyond it Ready rows are counted in status.attachmentsOmitted. */
  MAX_STATUS_ATTACHMENTS: z.coerce.number().int().min(1).max(2000).default(500),
  /** Per-pod resctrl groups (seed 004): watch pods and keep one group per pod on every node. */
  RESCTRL_ENABLED: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false').transform((v) => v === 'true'),
  RESCTRL_GROUP_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, _ and -, at most 32').default('pod_'),
  RESCTRL_CLEANUP_ON_START: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
  /** monitor: a monitoring group per pod (RMIDs); control: a control group per pod (CLOSIDs, allocation). */
  RESCTRL_MODE: z.enum(['monitor', 'control']).default('monitor'),
  RESCTRL_RESYNC_SECONDS: z.coerce.number().int().min(1).max(3600).default(10),
}).superRefine(checkTemporalConnection, ALWAYS);

const absoluteExistingDir = z
  .string()
  .refine((p) => path.isAbsolute(p), 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
  .refine((p) => existsSync(p) && statSync(p).isDirectory(), 'must be an existing directory');

export const nodeAgentConfigSchema = z.object({
  ...common,
  NODE_NAME: z.string({ error: 'NODE_NAME is required: set it from the Downward API (spec.nodeName)' }).pipe(dnsSubdomain),
  HOST_ROOT: absoluteExistingDir.default('/'),
  /** Under HOST_ROOT, like every host path: the hostPath the device plugin mounts as /etc/pcidp. */
  DEVICE_PLUGIN_CONFIG_PATH: z
    .string()
    .superRefine((p, ctx) => {
      try {
        validateDevicePluginConfigPath(p);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .default(DEFAULT_DEVICE_PLUGIN_CONFIG_PATH),
  /** Switch vfio's no-IOMMU mode on for DPDK binds on hosts without an IOMMU (most EC2 instance types). */
  DPDK_ENABLE_NOIOMMU: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
}).superRefine(checkTemporalConnection, ALWAYS);

export type ControlConfig = z.infer<typeof controlConfigSchema>;
export type WatcherConfig = z.infer<typeof watcherConfigSchema>;
export type NodeAgentConfig = z.infer<typeof nodeAgentConfigSchema>;
export type TemporalClientConfig = z.infer<typeof temporalClientConfigSchema>;

/** Parses the environment or throws one line per problem, naming the variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const res = schema.safeParse(env);
  if (res.success) return res.data;
  const lines = res.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
  throw new Error(`invalid configuration:\n  ${lines.join('\n  ')}`);
}
