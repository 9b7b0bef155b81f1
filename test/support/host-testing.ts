// Small helpers shared by the host and activity tests.
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { expect } from 'vitest';
import type { Host } from '../../host/host.js';

/** The ApplicationFailure a promise rejects with (fails the test if it resolves or rejects otherwise). */
export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** Every path under `dir` (relative to `base`) with its content hash or link target: proves nothing was touched. */
export async function treeFingerprint(base: string, dir: string): Promise<string> {
  const lines: string[] = [];
  async function walk(p: string): Promise<void> {
    const st = await lstat(p);
    const rel = path.relative(base, p);
    if (st.isSymbolicLink()) lines.push(`${rel} -> ${await readlink(p)}`);
    else if (st.isDirectory()) {
      lines.push(`${rel}/`);
      for (const name of (await readdir(p)).sort()) await walk(path.join(p, name));
    } else lines.push(`${rel} = ${createHash('sha256').update(await readFile(p)).digest('hex')}`);
  }
  await walk(dir);
  return lines.join('\n');
}

/** A Host that passes everything to `inner`, calling `onWrite` before each write (to record it, or to change the world mid-call). */
export function interceptWrites(inner: Host, onWrite: (p: string, data: string) => void): Host {
  return {
    root: inner.root,
    readFile: (p) => inner.readFile(p),
    write: async (p, data) => {
      onWrite(p, data);
      return inner.write(p, data);
    },
    readdir: (p) => inner.readdir(p),
    readlink: (p) => inner.readlink(p),
    exists: (p) => inner.exists(p),
    mkdir: (p) => inner.mkdir(p),
    rmdir: (p) => inner.rmdir(p),
    writeFileAtomic: (p, d, m) => inner.writeFileAtomic(p, d, m),
  };
}
