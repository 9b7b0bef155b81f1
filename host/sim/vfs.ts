// The nodes SimHost walks: directories, files and symlinks. Kernel models
// (pci.ts, net.ts, and later resctrl/cgroup) render their objects as these
// nodes on every lookup, so the file view can never drift from the model.
// TmpfsDir/TmpfsFile are the one mutable, regular part (/etc, /run, ...).
import { kernelError } from './errors.js';

export type SimNode = SimDir | SimFile | SimLink;

export interface SimDir {
  readonly kind: 'dir';
  entries(): ReadonlyMap<string, SimNode>;
  /** Absent: the filesystem has no mkdir (sysfs, procfs) and the kernel answers EPERM. */
  mkdir?(name: string): void;
  rmdir?(name: string): void;
  /** Absent: files cannot be created here (sysfs, procfs: EACCES). */
  createFile?(name: string, data: string, mode: number): void;
}

export interface SimFile {
  readonly kind: 'file';
  /** Absent: write-only attribute, opening it for reading is EACCES. */
  read?(): string;
  /** Absent: read-only attribute, opening it for writing is EACCES. Throws KernelError to reject. */
  write?(data: string): void;
}

export interface SimLink {
  readonly kind: 'link';
  readonly target: string;
}

/** A directory whose entries are computed from a model on each lookup; undefined entries are left out. */
export function dir(render: () => Record<string, SimNode | undefined>): SimDir {
  return {
    kind: 'dir',
    entries() {
      const out = new Map<string, SimNode>();
      for (const [name, node] of Object.entries(render())) if (node) out.set(name, node);
      return out;
    },
  };
}

/** A kernel attribute: `read` renders the value, `write` is the store handler. */
export function attr(read: (() => string) | undefined, write?: (data: string) => void): SimFile {
  const node: { kind: 'file'; read?: () => string; write?: (data: string) => void } = { kind: 'file' };
  if (read) node.read = read;
  if (write) node.write = write;
  return node;
}

export function link(target: string): SimLink {
  return { kind: 'link', target };
}

export class TmpfsFile implements SimFile {
  readonly kind = 'file';
  constructor(
    public data: string,
    public mode: number,
  ) {}

  read(): string {
    return this.data;
  }

  /** O_WRONLY without O_TRUNC: one write at offset 0 overwrites the head and keeps the tail. */
  write(data: string): void {
    this.data = data + this.data.slice(data.length);
  }
}

export class TmpfsDir implements SimDir {
  readonly kind = 'dir';
  private readonly children = new Map<string, TmpfsDir | TmpfsFile>();

  entries(): ReadonlyMap<string, SimNode> {
    return new Map(this.children);
  }

  mkdir(name: string): void {
    if (this.children.has(name)) throw kernelError('EEXIST');
    this.children.set(name, new TmpfsDir());
  }

  rmdir(name: string): void {
    const child = this.children.get(name);
    if (!child) throw kernelError('ENOENT');
    if (!(child instanceof TmpfsDir)) throw kernelError('ENOTDIR');
    if (child.children.size > 0) throw kernelError('ENOTEMPTY');
    this.children.delete(name);
  }

  /** A fresh, empty directory `name` in place of whatever was there (a tmpfs mounted again at boot). */
  replaceWithEmptyDir(name: string): void {
    this.children.set(name, new TmpfsDir());
  }

  /** rename(2) of a finished temp file: replaces a regular file atomically, never a directory. */
  createFile(name: string, data: string, mode: number): void {
    if (this.children.get(name) instanceof TmpfsDir) throw kernelError('EISDIR');
    this.children.set(name, new TmpfsFile(data, mode));
  }

  /** Test seeding: creates missing parent directories, like `mkdir -p` then a write. */
  seed(segments: string[], data: string, mode = 0o644): void {
    const [head, ...rest] = segments;
    if (head === undefined) throw new Error('seed needs a file name');
    if (rest.length === 0) {
      this.createFile(head, data, mode);
      return;
    }
    let child = this.children.get(head);
    if (child === undefined) {
      child = new TmpfsDir();
      this.children.set(head, child);
    }
    if (!(child instanceof TmpfsDir)) throw new Error(`cannot seed under regular file ${head}`);
    child.seed(rest, data, mode);
  }
}
