// Host on node:fs, confined to a host root. Every path is validated, then
// resolved with realpath and checked to stay under the root's realpath before
// anything is opened; the operation then runs on the resolved path, so a
// symlink swapped in between cannot redirect it outside the root. sysfs links
// are relative (`../../devices/...`), so they stay under a bind-mounted root.
// No shell and no child processes.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { errnoError, HostUsageError, validateHostPath, validateWriteData, type Host } from './host.js';

type Syscall = 'open' | 'scandir' | 'readlink' | 'mkdir' | 'rmdir' | 'rename' | 'stat';

export class RealHost implements Host {
  readonly root: string;
  private rootReal: Promise<string> | undefined;

  constructor(root = '/') {
    if (!path.isAbsolute(root)) throw new Error(`host root must be absolute, got ${JSON.stringify(root)}`);
    this.root = path.resolve(root);
  }

  async readFile(p: string): Promise<string> {
    const real = await this.confineTarget(p, 'open');
    return this.call(p, () => readFile(real, 'utf8'));
  }

  async write(p: string, data: string): Promise<void> {
    validateHostPath(p);
    validateWriteData(p, data);
    const real = await this.confineTarget(p, 'open');
    const buffer = Buffer.from(data, 'utf8');
    await this.call(p, async () => {
      // No O_CREAT: a missing attribute must fail with ENOENT, never become a regular file.
      const handle = await open(real, constants.O_WRONLY);
      try {
        // FileHandle.write with an explicit length is a single write(2); kernel
        // attribute stores see the whole value at once or reject it.
        const { bytesWritten } = await handle.write(buffer, 0, buffer.length, null);
        if (bytesWritten !== buffer.length) {
          throw errnoError('EIO', 'write', p, `short write: ${bytesWritten} of ${buffer.length} bytes`);
        }
      } finally {
        await handle.close();
      }
    });
  }

  async readdir(p: string): Promise<string[]> {
    const real = await this.confineTarget(p, 'scandir');
    const names = await this.call(p, () => readdir(real));
    return names.sort();
  }

  async readlink(p: string): Promise<string> {
    const real = await this.confineParent(p, 'readlink');
    return this.call(p, () => readlink(real));
  }

  async exists(p: string): Promise<boolean> {
    try {
      await this.confineTarget(p, 'stat');
      return true;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  async mkdir(p: string): Promise<void> {
    const real = await this.confineParent(p, 'mkdir');
    await this.call(p, () => mkdir(real));
  }

  async rmdir(p: string): Promise<void> {
    const real = await this.confineParent(p, 'rmdir');
    await this.call(p, () => rmdir(real));
  }

  async writeFileAtomic(p: string, data: string, mode = 0o644): Promise<void> {
    const target = await this.confineParent(p, 'open');
    const existing = await lstat(target).catch((err: unknown) => {
      if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
      throw this.translate(err, p);
    });
    if (existing && !existing.isFile()) {
      throw errnoError(existing.isDirectory() ? 'EISDIR' : 'EINVAL', 'rename', p, 'target is not a regular file');
    }
    const dir = path.dirname(target);
    const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    await this.call(p, async () => {
      const handle = await open(temp, 'wx', mode);
      try {
        await handle.writeFile(data, 'utf8');
        // open()'s mode is filtered by the umask; the caller asked for this exact mode.
        await handle.chmod(mode);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      // Persist the rename itself.
      const dirHandle = await open(dir, constants.O_RDONLY);
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    }).catch(async (err: unknown) => {
      await unlink(temp).catch(() => undefined);
      throw err;
    });
  }

  /** Realpath of the whole path (symlinks followed), which must stay under the root. */
  private async confineTarget(p: string, syscall: Syscall): Promise<string> {
    validateHostPath(p);
    const resolved = await this.call(p, () => realpath(this.full(p)), syscall);
    await this.assertUnderRoot(p, resolved);
    return resolved;
  }

  /** Realpath of the parent, plus the last name unresolved (for readlink, mkdir, rmdir, rename). */
  private async confineParent(p: string, syscall: Syscall): Promise<string> {
    validateHostPath(p);
    if (p === '/') return this.confineTarget(p, syscall);
    const parent = await this.call(p, () => realpath(path.dirname(this.full(p))), syscall);
    await this.assertUnderRoot(p, parent);
    return path.join(parent, path.basename(p));
  }

  private full(p: string): string {
    return this.root === '/' ? p : this.root + (p === '/' ? '' : p);
  }

  private async assertUnderRoot(p: string, resolved: string): Promise<void> {
    this.rootReal ??= realpath(this.root);
    const root = await this.rootReal;
    const inside = root === '/' || resolved === root || resolved.startsWith(root + '/');
    if (!inside) throw new HostUsageError('ERR_HOST_PATH_ESCAPE', p, `resolves to ${resolved}, outside the host root ${root}`);
  }

  /** Runs an fs call and rewrites its error to name the host path, not the resolved one. */
  private async call<T>(p: string, fn: () => Promise<T>, syscall?: Syscall): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.translate(err, p, syscall);
    }
  }

  private translate(err: unknown, p: string, syscall?: string): unknown {
    if (err instanceof HostUsageError) return err;
    const e = err as { code?: unknown; syscall?: unknown; path?: unknown };
    if (typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code)) return err;
    if (e.path === p && syscall === undefined) return err;
    // realpath failures are reported as the operation the caller asked for.
    const out = errnoError(e.code, syscall ?? (typeof e.syscall === 'string' ? e.syscall : 'unknown'), p);
    out.cause = err;
    return out;
  }
}

export function createRealHost(root = '/'): Host {
  return new RealHost(root);
}
