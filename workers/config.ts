// Environment configuration, validated before any client is created: one
// clear error per bad value (the original hung creating a client before it
// noticed NODE_NAME was missing).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_CONTROL_TASK_QUEUE } from '../common/names.js';
import { DEFAULT_DEVICE_PLUGIN_CONFIG_PATH } from '../common/device-plugin.js';
import { validateDevicePluginConfigPath } from '../activities/node/device-plugin-activities.js';
import { DEFAULT_DEVICE_PLUGIN_NAMESPACES, DEFAULT_DEVICE_PLUGIN_SELECTORS } from '../activities/kube/device-plugin-activities.js';

const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a lowercase DNS subdomain (a Kubernetes node name)');

const logLevel = z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO');

const common = {
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
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
});

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
  /** Per-pod resctrl groups (seed 004): watch pods and keep one group per pod on every node. */
  RESCTRL_ENABLED: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false').transform((v) => v === 'true'),
  RESCTRL_GROUP_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, _ and -, at most 32').default('pod_'),
  RESCTRL_CLEANUP_ON_START: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
  /** monitor: a monitoring group per pod (RMIDs); control: a control group per pod (CLOSIDs, allocation). */
  RESCTRL_MODE: z.enum(['monitor', 'control']).default('monitor'),
  RESCTRL_RESYNC_SECONDS: z.coerce.number().int().min(1).max(3600).default(10),
});

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
});

export type ControlConfig = z.infer<typeof controlConfigSchema>;
export type WatcherConfig = z.infer<typeof watcherConfigSchema>;
export type NodeAgentConfig = z.infer<typeof nodeAgentConfigSchema>;

/** Parses the environment or throws one line per problem, naming the variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const res = schema.safeParse(env);
  if (res.success) return res.data;
  const lines = res.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
  throw new Error(`invalid configuration:\n  ${lines.join('\n  ')}`);
}
