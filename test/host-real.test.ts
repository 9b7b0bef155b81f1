// RealHost on node:fs: confinement under the host root (symlinks that escape
// are rejected), no file creation on write, atomic replace, path validation;
// plus read-only checks against this machine's real /sys/class/net.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostUsageError, isErrno } from '../host/host.js';
import { findInterfaceByMac, findInterfacesByMac, listInterfaces, pciAddressOf, readInterface, readRoutes, setMtu, setUp } from '../host/net.js';
import { RealHost } from '../host/real-host.js';

const BDF = '0000:00:06.0';
const MAC = '02:aa:bb:cc:dd:06';

/** A tmpdir laid out like a host root: sysfs-shaped files and relative links, plus escaping links. */
async function makeTree(): Promise<{ root: string; base: string }> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'host-real-'));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret'), 'outside the root\n');
  const netdev = path.join(root, 'sys/devices/pci0000:00', BDF, 'net/ens6');
  await mkdir(netdev, { recursive: true });
  await writeFile(path.join(netdev, 'address'), `${MAC}\n`);
  await writeFile(path.join(netdev, 'mtu'), '1500\n');
  await writeFile(path.join(netdev, 'flags'), '0x1002\n');
  await writeFile(path.join(netdev, 'operstate'), 'down\n');
  await symlink(`../../../${BDF}`, path.join(netdev, 'device'));
  await mkdir(path.join(root, 'sys/class/net'), { recursive: true });
  await symlink(`../../devices/pci0000:00/${BDF}/net/ens6`, path.join(root, 'sys/class/net/ens6'));
  // Escapes: an absolute link and a relative one climbing above the root.
  await symlink(outside, path.join(root, 'sys/class/net/evil'));
  await symlink('../../../../outside', path.join(root, 'sys/class/net/evil2'));
  await mkdir(path.join(root, 'etc'));
  await mkdir(path.join(root, 'proc/net'), { recursive: true });
  await writeFile(path.join(root, 'proc/net/route'), 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n');
  return { root, base };
}

describe('RealHost on a tmpdir host root', () => {
  let root: string;
  let base: string;
  let host: RealHost;

  beforeEach(async () => {
    const tree = await makeTree();
    root = tree.root;
    base = tree.base;
    host = new RealHost(root);
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('reads through relative sysfs links and lists directories', async () => {
    expect(host.root).toBe(root);
    expect(await host.readdir('/sys/class/net')).toEqual(['ens6', 'evil', 'evil2']);
    expect(await host.readlink('/sys/class/net/ens6')).toBe(`../../devices/pci0000:00/${BDF}/net/ens6`);
    expect(await host.readFile('/sys/class/net/ens6/address')).toBe(`${MAC}\n`);
    expect(await pciAddressOf(host, 'ens6')).toBe(BDF);
    expect(await host.exists('/sys/class/net/ens6/mtu')).toBe(true);
    expect(await host.exists('/sys/class/net/ens7')).toBe(false);
    expect(await host.exists('/sys/class/net/ens6/mtu/x')).toBe(false);
  });

  it('write opens an existing file without creating one; errors name the host path', async () => {
    await host.write('/sys/class/net/ens6/mtu', '9001');
    expect(await readFile(path.join(root, 'sys/class/net/ens6/mtu'), 'utf8')).toBe('9001\n');
    const err = await host.write('/sys/class/net/ens6/nonexistent', '1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/sys/class/net/ens6/nonexistent' });
    expect(existsSync(path.join(root, 'sys/class/net/ens6/nonexistent'))).toBe(false);
    await expect(host.write('/sys/class/net/ens6', '1')).rejects.toSatisfy((e: unknown) => isErrno(e, 'EISDIR'));
    await expect(host.write('/sys/class/net/ens6/mtu', '')).rejects.toMatchObject({ code: 'ERR_EMPTY_WRITE' });
    await expect(host.readFile('/missing')).rejects.toMatchObject({ code: 'ENOENT', path: '/missing' });
    await expect(host.readlink('/sys/class/net/ens6/mtu')).rejects.toMatchObject({ code: 'EINVAL', syscall: 'readlink' });
  });

  it('rejects every path whose symlinks lead outside the root', async () => {
    for (const link of ['evil', 'evil2']) {
      const through = `/sys/class/net/${link}/secret`;
      for (const op of [() => host.readFile(through), () => host.write(through, 'x'), () => host.readdir(`/sys/class/net/${link}`), () => host.exists(through), () => host.mkdir(`${through}-dir`), () => host.writeFileAtomic(`/sys/class/net/${link}/new`, 'x')]) {
        const err = await op().catch((e: unknown) => e);
        expect(err, link).toBeInstanceOf(HostUsageError);
        expect((err as HostUsageError).code).toBe('ERR_HOST_PATH_ESCAPE');
      }
    }
    expect(await readFile(path.join(base, 'outside/secret'), 'utf8')).toBe('outside the root\n');
    expect(await readdir(path.join(base, 'outside'))).toEqual(['secret']);
    // The link itself lives inside the root, so reading it is fine.
    expect(await host.readlink('/sys/class/net/evil2')).toBe('../../../../outside');
  });

  it('validates paths before touching anything', async () => {
    for (const p of ['etc/x', '/etc/../x', '/etc/./x', '/etc//x', '/etc/x/', '/etc/x\0y']) {
      await expect(host.mkdir(p), p).rejects.toMatchObject({ code: 'ERR_INVALID_HOST_PATH' });
      await expect(host.writeFileAtomic(p, 'data'), p).rejects.toMatchObject({ code: 'ERR_INVALID_HOST_PATH' });
    }
    expect(await readdir(path.join(root, 'etc'))).toEqual([]);
    expect(existsSync(path.join(root, 'x'))).toBe(false);
  });

  it('mkdir and rmdir are single-level with EEXIST, ENOENT and ENOTEMPTY', async () => {
    await host.mkdir('/etc/pcidp');
    await expect(host.mkdir('/etc/pcidp')).rejects.toMatchObject({ code: 'EEXIST', path: '/etc/pcidp' });
    await expect(host.mkdir('/etc/a/b')).rejects.toMatchObject({ code: 'ENOENT' });
    await host.writeFileAtomic('/etc/pcidp/config.json', '{}');
    await expect(host.rmdir('/etc/pcidp')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await rm(path.join(root, 'etc/pcidp/config.json'));
    await host.rmdir('/etc/pcidp');
    expect(existsSync(path.join(root, 'etc/pcidp'))).toBe(false);
  });

  it('writeFileAtomic replaces the file whole, with the given mode and no temp file left', async () => {
    await host.writeFileAtomic('/etc/config.json', '{"a":1,"long":"xxxxxxxxxxxx"}\n', 0o600);
    await host.writeFileAtomic('/etc/config.json', '{"a":2}\n', 0o600);
    expect(await readFile(path.join(root, 'etc/config.json'), 'utf8')).toBe('{"a":2}\n');
    expect((await stat(path.join(root, 'etc/config.json'))).mode & 0o777).toBe(0o600);
    expect(await readdir(path.join(root, 'etc'))).toEqual(['config.json']);
    await expect(host.writeFileAtomic('/etc', 'x')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(host.writeFileAtomic('/nope/config.json', 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('host/net.ts helpers work on the tree (sysfs-shaped regular files)', async () => {
    const iface = await findInterfaceByMac(host, MAC.toUpperCase(), { physicalOnly: true });
    expect(iface).toEqual({ name: 'ens6', macAddress: MAC, mtu: 1500, flags: 0x1002, up: false, operstate: 'down', hasDevice: true, pciAddress: BDF });
    await setMtu(host, 'ens6', 9001);
    await setUp(host, 'ens6');
    expect(await readInterface(host, 'ens6')).toMatchObject({ mtu: 9001, flags: 0x1003, up: true });
    expect(await readRoutes(host)).toEqual([]);
  });
});

describe.skipIf(!existsSync('/sys/class/net/lo'))("RealHost on this machine's /sys (read-only)", () => {
  const host = new RealHost('/');

  it('sees lo as a virtual interface with the zero MAC', async () => {
    expect(await listInterfaces(host)).toContain('lo');
    expect(await host.readlink('/sys/class/net/lo')).toMatch(/devices\/virtual\/net\/lo$/);
    const lo = await readInterface(host, 'lo');
    expect(lo).toMatchObject({ name: 'lo', macAddress: '00:00:00:00:00:00', hasDevice: false, up: true });
    expect(lo.mtu).toBeGreaterThan(0);
    expect(lo.pciAddress).toBeUndefined();
    expect((await findInterfaceByMac(host, '00:00:00:00:00:00'))?.name).toBe('lo');
    expect(await findInterfaceByMac(host, '00:00:00:00:00:00', { physicalOnly: true })).toBeUndefined();
  });

  it('every interface reads back and is found again by its own MAC', async () => {
    for (const name of await listInterfaces(host)) {
      const info = await readInterface(host, name);
      expect(info.name).toBe(name);
      expect(info.mtu).toBeGreaterThan(0);
      const found = await findInterfacesByMac(host, info.macAddress);
      expect(found.map((i) => i.name)).toContain(name);
      if (info.pciAddress !== undefined) expect(await host.exists(`/sys/bus/pci/devices/${info.pciAddress}`)).toBe(true);
    }
  });

  it('parses /proc/net/route', async () => {
    const routes = await readRoutes(host);
    const names = await listInterfaces(host);
    for (const r of routes) {
      expect(names).toContain(r.interfaceName);
      expect(r.destination).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect(r.flags & 0x1).toBe(1);
    }
  });
});
