// The node agent's narrow port to the host: the few file operations that
// sysfs, procfs, resctrl and cgroupfs need, and nothing else. Two
// implementations: real-host.ts (node:fs under a host root) and sim/sim-host.ts
// (an in-memory model of the kernel objects). Both fail with the same
// Node-style errno errors, so callers switch on `code` identically.
import { getSystemErrorMap } from 'node:util';

export interface Host {
  /** '/' in production, e.g. '/host' when the host's root is bind-mounted into a container. */
  readonly root: string;
  readFile(p: string): Promise<string>;
  /** Opens an existing file write-only (never creates it) and issues exactly one write(2). */
  write(p: string, data: string): Promise<void>;
  readdir(p: string): Promise<string[]>;
  readlink(p: string): Promise<string>;
  /** Follows symlinks; false only for ENOENT/ENOTDIR. */
  exists(p: string): Promise<boolean>;
  /** One level; EEXIST when present. */
  mkdir(p: string): Promise<void>;
  rmdir(p: string): Promise<void>;
  /** Regular files only: temp file in the same directory, fsync, rename. */
  writeFileAtomic(p: string, data: string, mode?: number): Promise<void>;
}

/** A Node-style system error: what node:fs throws, and what the simulated host throws too. */
export interface ErrnoError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

const SYSTEM_ERRORS = new Map<string, { errno: number; message: string }>(
  [...getSystemErrorMap()].map(([errno, [name, message]]) => [name, { errno, message }]),
);

/** Builds an error shaped like node:fs's (message `CODE: description, syscall 'path'`). */
export function errnoError(code: string, syscall: string, path?: string, detail?: string): ErrnoError {
  const known = SYSTEM_ERRORS.get(code);
  const where = path === undefined ? syscall : `${syscall} '${path}'`;
  const text = `${code}: ${known?.message ?? 'system error'}, ${where}${detail ? ` (${detail})` : ''}`;
  const err = new Error(text) as ErrnoError;
  err.code = code;
  if (known) err.errno = known.errno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

/** True when `err` carries one of the given errno codes (e.g. isErrno(err, 'ENOENT')). */
export function isErrno(err: unknown, ...codes: string[]): err is ErrnoError {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && codes.includes(code);
}

export type HostUsageCode = 'ERR_INVALID_HOST_PATH' | 'ERR_HOST_PATH_ESCAPE' | 'ERR_EMPTY_WRITE';

/** A caller mistake caught before anything on the host is touched (never a kernel answer). */
export class HostUsageError extends Error {
  constructor(
    readonly code: HostUsageCode,
    readonly path: string,
    reason: string,
  ) {
    super(`${code}: ${reason}: ${JSON.stringify(path)}`);
    this.name = 'HostUsageError';
  }
}

/**
 * Accepts only absolute, normalized host paths: no NUL, no `.` or `..`
 * segments, no empty segments (`//`, trailing `/`). Returns the path unchanged.
 */
export function validateHostPath(p: string): string {
  if (typeof p !== 'string' || p.length === 0) throw new HostUsageError('ERR_INVALID_HOST_PATH', String(p), 'path must be a non-empty string');
  if (p.includes('\0')) throw new HostUsageError('ERR_INVALID_HOST_PATH', p, 'path contains NUL');
  if (!p.startsWith('/')) throw new HostUsageError('ERR_INVALID_HOST_PATH', p, 'path must be absolute');
  if (p === '/') return p;
  const segments = p.slice(1).split('/');
  if (segments.includes('..')) throw new HostUsageError('ERR_INVALID_HOST_PATH', p, 'path contains a ".." segment');
  if (segments.includes('.')) throw new HostUsageError('ERR_INVALID_HOST_PATH', p, 'path contains a "." segment');
  if (segments.includes('')) throw new HostUsageError('ERR_INVALID_HOST_PATH', p, 'path has an empty segment or a trailing slash');
  return p;
}

/** Data for Host.write: a zero-length write may never reach a sysfs store handler, so it is refused. */
export function validateWriteData(p: string, data: string): void {
  if (data.length === 0) throw new HostUsageError('ERR_EMPTY_WRITE', p, 'refusing a zero-length write (write "\\n" to clear a value)');
}
