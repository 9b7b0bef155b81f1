// Node activity: write the SR-IOV device plugin's config.json on the host,
// atomically (temp file, fsync, rename: the plugin never reads half a file)
// and only when the content differs, so a repeated or retried call changes
// nothing and the caller restarts the plugin only for a real change.
import { ApplicationFailure } from '@temporalio/common';
import { HostUsageError, isErrno, validateHostPath, type Host } from '../../host/host.js';
import { devicePluginConfigProblems, parseDevicePluginConfig, serializeDevicePluginConfig, type DevicePluginConfig } from '../../common/device-plugin.js';

export interface WriteDevicePluginConfigInput {
  config: DevicePluginConfig;
}

export interface WriteDevicePluginConfigResult {
  changed: boolean;
  path: string;
  /** What the file held before, when it was a config we could read. */
  previous?: DevicePluginConfig;
}

export const DEVICE_PLUGIN_CONFIG_FAILURES = {
  invalidConfig: 'InvalidDevicePluginConfig',
  unusablePath: 'DevicePluginConfigPathUnusable',
  permissionDenied: 'HostPermissionDenied',
} as const;

/** Kernel filesystems: a config there is a mistake or an attack, never a file the plugin reads. */
const FORBIDDEN_TREES = ['/proc', '/sys', '/dev'];
const JSON_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.json$/;

/**
 * A host path (resolved under the Host's root, which confines symlinks) to a
 * `.json` file outside the kernel filesystems. Returns it unchanged or throws.
 */
export function validateDevicePluginConfigPath(p: string): string {
  try {
    validateHostPath(p);
  } catch (err) {
    throw new Error(`device plugin config path rejected: ${(err as Error).message}`);
  }
  const base = p.slice(p.lastIndexOf('/') + 1);
  if (!JSON_FILE_NAME.test(base)) throw new Error(`device plugin config path ${JSON.stringify(p)} must name a .json file (the plugin's --config-file)`);
  const tree = FORBIDDEN_TREES.find((t) => p === t || p.startsWith(`${t}/`));
  if (tree) throw new Error(`device plugin config path ${JSON.stringify(p)} is under ${tree}, a kernel filesystem`);
  return p;
}

export function createDevicePluginActivities({ host, nodeName, configPath }: { host: Host; nodeName: string; configPath: string }) {
  const path = validateDevicePluginConfigPath(configPath);
  const where = `${path} on node ${nodeName}`;

  function hostFailure(err: unknown, doing: string): unknown {
    const message = `${doing} ${where}: ${(err as Error).message}`;
    if (err instanceof HostUsageError) return ApplicationFailure.nonRetryable(message, DEVICE_PLUGIN_CONFIG_FAILURES.unusablePath, { nodeName, path });
    if (isErrno(err, 'EACCES', 'EPERM', 'EROFS')) return ApplicationFailure.nonRetryable(message, DEVICE_PLUGIN_CONFIG_FAILURES.permissionDenied, { nodeName, path });
    if (isErrno(err, 'EISDIR', 'ENOTDIR', 'EINVAL', 'ELOOP')) return ApplicationFailure.nonRetryable(message, DEVICE_PLUGIN_CONFIG_FAILURES.unusablePath, { nodeName, path });
    return err;
  }

  /** The file's text, or undefined when there is none yet. */
  async function readCurrent(): Promise<string | undefined> {
    try {
      return await host.readFile(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw hostFailure(err, 'reading');
    }
  }

  /** mkdir -p with the Host's one-level mkdir (the plugin's hostPath may not exist yet). */
  async function ensureParentDirs(): Promise<void> {
    const segments = path.split('/').slice(1, -1);
    for (let i = 1; i <= segments.length; i++) {
      const dir = `/${segments.slice(0, i).join('/')}`;
      try {
        if (await host.exists(dir)) continue;
        await host.mkdir(dir);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw hostFailure(err, `creating ${dir} for`);
      }
    }
  }

  return {
    async writeDevicePluginConfig(input: WriteDevicePluginConfigInput): Promise<WriteDevicePluginConfigResult> {
      const problems = devicePluginConfigProblems(input.config);
      if (problems.length > 0) {
        throw ApplicationFailure.nonRetryable(`refusing to write ${where}: ${problems.join('; ')}`, DEVICE_PLUGIN_CONFIG_FAILURES.invalidConfig, { nodeName, problems });
      }
      const wanted = serializeDevicePluginConfig(input.config);
      const current = await readCurrent();
      const previous = current === undefined ? undefined : parseDevicePluginConfig(current);
      if (current === wanted) return { changed: false, path, previous };
      await ensureParentDirs();
      try {
        await host.writeFileAtomic(path, wanted, 0o644);
      } catch (err) {
        throw hostFailure(err, 'writing');
      }
      return previous === undefined ? { changed: true, path } : { changed: true, path, previous };
    },
  };
}

export type DevicePluginActivities = ReturnType<typeof createDevicePluginActivities>;
