// The simulated host must answer like the kernel: sysfs layout and links,
// errno rules of the PCI bind/unbind/probe files, net-sysfs mtu/flags stores,
// /proc/net/route, and the Host contract (path validation, no file creation).
import { describe, expect, it } from 'vitest';
import { HostUsageError, isErrno } from '../host/host.js';
import { AmbiguousMacError, findInterfaceByMac, findInterfacesByMac, pciAddressOf, readInterface, readRoutes, setDown, setMtu, setUp } from '../host/net.js';
import { ENA_DEVICE_IDS, PCI_CLASS_ETHERNET, PCI_VENDOR_AMAZON } from '../host/sim/drivers.js';
import { ARPHRD_ETHER, IFF } from '../host/sim/net.js';
import { SimHost } from '../host/sim/sim-host.js';
import { link } from '../host/sim/vfs.js';

const PRIMARY_MAC = '02:00:00:00:00:05';
const ENI_MAC = '02:aa:bb:cc:dd:06';

function newHost(): SimHost {
  return new SimHost({ primary: { macAddress: PRIMARY_MAC, gateway: '10.0.0.1' } });
}

async function expectErrno(p: Promise<unknown>, code: string, syscall?: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(Error);
  expect((err as { code?: string }).code).toBe(code);
  if (syscall) expect((err as { syscall?: string }).syscall).toBe(syscall);
}

describe('SimHost sysfs layout', () => {
  it('renders the primary ENA device, its netdev and lo with kernel-shaped links', async () => {
    const host = newHost();
    expect(await host.readdir('/sys/class/net')).toEqual(['ens5', 'lo']);
    expect(await host.readlink('/sys/class/net/ens5')).toBe('../../devices/pci0000:00/0000:00:05.0/net/ens5');
    expect(await host.readlink('/sys/class/net/ens5/device')).toBe('../../../0000:00:05.0');
    expect(await host.readlink('/sys/bus/pci/devices/0000:00:05.0')).toBe('../../../devices/pci0000:00/0000:00:05.0');
    expect(await host.readlink('/sys/bus/pci/devices/0000:00:05.0/driver')).toBe('../../../bus/pci/drivers/ena');
    expect(await host.readlink('/sys/class/net/lo')).toBe('../../devices/virtual/net/lo');

    // Reads walk through the relative links.
    expect(await host.readFile('/sys/class/net/ens5/device/vendor')).toBe('0x1d0f\n');
    expect(await host.readFile('/sys/class/net/ens5/device/device')).toBe('0xec20\n');
    expect(await host.readFile('/sys/class/net/ens5/device/class')).toBe('0x020000\n');
    expect(await host.readFile('/sys/class/net/ens5/device/uevent')).toContain('PCI_SLOT_NAME=0000:00:05.0\n');
    expect(await host.readFile('/sys/class/net/ens5/device/driver_override')).toBe('(null)\n');
    expect(await host.readdir('/sys/bus/pci/devices/0000:00:05.0/net')).toEqual(['ens5']);
    expect(await host.readFile('/sys/class/net/ens5/address')).toBe(`${PRIMARY_MAC}\n`);
    expect(await host.readFile('/sys/class/net/ens5/mtu')).toBe('9001\n');
    expect(await host.readFile('/sys/class/net/ens5/flags')).toBe('0x1003\n');
    expect(await host.readFile('/sys/class/net/ens5/operstate')).toBe('up\n');
    expect(await host.readFile('/sys/class/net/ens5/type')).toBe(`${ARPHRD_ETHER}\n`);

    expect(await host.readFile('/sys/class/net/lo/address')).toBe('00:00:00:00:00:00\n');
    expect(await host.readFile('/sys/class/net/lo/ifindex')).toBe('1\n');
    expect(await host.readFile('/sys/class/net/lo/operstate')).toBe('unknown\n');
    expect(await host.exists('/sys/class/net/lo/device')).toBe(false);
    expect(await host.readdir('/')).toEqual(['dev', 'etc', 'proc', 'run', 'sys', 'tmp', 'var']);
  });

  it('hot-plugs ENA VFs into the next free slots, bound to ena, down at mtu 1500', async () => {
    const host = newHost();
    expect(host.hotplugEna({ macAddress: ENI_MAC.toUpperCase() })).toEqual({ pciAddress: '0000:00:06.0', interfaceName: 'ens6' });
    expect(host.hotplugEna({ macAddress: '02:aa:bb:cc:dd:07' })).toEqual({ pciAddress: '0000:00:07.0', interfaceName: 'ens7' });
    expect(await host.readFile('/sys/class/net/ens6/address')).toBe(`${ENI_MAC}\n`);
    expect(await host.readFile('/sys/class/net/ens6/mtu')).toBe('1500\n');
    expect(await host.readFile('/sys/class/net/ens6/flags')).toBe('0x1002\n');
    expect(await host.readFile('/sys/class/net/ens6/operstate')).toBe('down\n');
    expect(await host.readdir('/sys/bus/pci/drivers/ena')).toEqual(['0000:00:05.0', '0000:00:06.0', '0000:00:07.0', 'bind', 'unbind']);
    expect(() => host.hotplugEna({ macAddress: ENI_MAC })).toThrow(/already plugged/);

    host.unplug('0000:00:06.0');
    expect(await host.exists('/sys/bus/pci/devices/0000:00:06.0')).toBe(false);
    expect(await host.exists('/sys/class/net/ens6')).toBe(false);
    // The freed slot is reused, with a fresh ifindex.
    const again = host.hotplugEna({ macAddress: '02:aa:bb:cc:dd:08' });
    expect(again.pciAddress).toBe('0000:00:06.0');
    expect(await host.readFile('/sys/class/net/ens6/ifindex')).toBe('5\n');
    expect(() => host.unplug('0000:00:1f.0')).toThrow(/no PCI device/);
  });

  it('snapshot() is a plain JSON view of devices, drivers, interfaces and routes', () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const snap = host.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap.pciDevices).toEqual([
      { address: '0000:00:05.0', vendor: '0x1d0f', device: '0xec20', macAddress: PRIMARY_MAC, driver: 'ena', driverOverride: null, interfaceName: 'ens5' },
      { address: '0000:00:06.0', vendor: '0x1d0f', device: '0xec20', macAddress: ENI_MAC, driver: 'ena', driverOverride: null, interfaceName: 'ens6' },
    ]);
    expect(snap.drivers).toEqual([
      { name: 'ena', devices: ['0000:00:05.0', '0000:00:06.0'] },
      { name: 'pci-stub', devices: [] },
    ]);
    expect(snap.interfaces.map((i) => [i.name, i.mtu, i.up, i.pciAddress])).toEqual([
      ['lo', 65536, true, null],
      ['ens5', 9001, true, '0000:00:05.0'],
      ['ens6', 1500, false, '0000:00:06.0'],
    ]);
    expect(snap.routes).toEqual([{ interfaceName: 'ens5', destination: '0.0.0.0/0', gateway: '10.0.0.1' }]);
  });
});

describe('SimHost file semantics', () => {
  it('never creates a file on write: a missing attribute is ENOENT', async () => {
    const host = newHost();
    await expectErrno(host.write('/sys/class/net/ens5/nonexistent', '1'), 'ENOENT', 'open');
    await expectErrno(host.write('/etc/new-file', 'x'), 'ENOENT', 'open');
    expect(await host.exists('/etc/new-file')).toBe(false);
    await expectErrno(host.write('/sys/class/net/ens9/mtu', '1500'), 'ENOENT');
  });

  it('answers EACCES, EISDIR, ENOTDIR and EINVAL where the VFS does', async () => {
    const host = newHost();
    await expectErrno(host.write('/sys/class/net/ens5/address', '02:00:00:00:00:09'), 'EACCES', 'open');
    await expectErrno(host.readFile('/sys/bus/pci/drivers/ena/bind'), 'EACCES', 'open');
    await expectErrno(host.write('/sys/class/net/ens5', '1'), 'EISDIR', 'open');
    await expectErrno(host.readFile('/sys/class/net'), 'EISDIR', 'read');
    await expectErrno(host.readdir('/sys/class/net/ens5/mtu'), 'ENOTDIR', 'scandir');
    await expectErrno(host.readFile('/sys/class/net/ens5/mtu/x'), 'ENOTDIR');
    await expectErrno(host.readlink('/sys/class/net/ens5/mtu'), 'EINVAL', 'readlink');
    const err = await host.write('/sys/class/net/ens5/mtu', 'abc').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINVAL', syscall: 'write', path: '/sys/class/net/ens5/mtu' });
    expect((err as Error).message).toMatch(/^EINVAL: invalid argument, write '\/sys\/class\/net\/ens5\/mtu'/);
    expect(isErrno(err, 'EINVAL')).toBe(true);
    expect(isErrno(err, 'ENOENT', 'ENODEV')).toBe(false);
  });

  it('follows absolute and relative links and stops loops with ELOOP', async () => {
    const host = newHost();
    host.addEntries('/tmp', () => ({ loop: link('loop'), etc: link('/etc'), net: link('../sys/class/net') }));
    await expectErrno(host.readFile('/tmp/loop'), 'ELOOP');
    expect(await host.readFile('/tmp/net/ens5/mtu')).toBe('9001\n');
    await host.mkdir('/etc/pcidp');
    expect(await host.readdir('/tmp/etc')).toContain('pcidp');
    expect(await host.readlink('/tmp/etc')).toBe('/etc');
    await expectErrno(host.rmdir('/tmp/etc'), 'ENOTDIR');
  });

  it('mkdir and rmdir: EEXIST, EPERM in sysfs, ENOTEMPTY, EBUSY on a mount point', async () => {
    const host = newHost();
    await host.mkdir('/run/nodeeni');
    await expectErrno(host.mkdir('/run/nodeeni'), 'EEXIST', 'mkdir');
    await expectErrno(host.mkdir('/sys/class/net'), 'EEXIST');
    await expectErrno(host.mkdir('/sys/class/net/bond0'), 'EPERM', 'mkdir');
    await expectErrno(host.mkdir('/run/a/b'), 'ENOENT', 'mkdir');
    await host.writeFileAtomic('/run/nodeeni/state.json', '{}');
    await expectErrno(host.rmdir('/run/nodeeni'), 'ENOTEMPTY', 'rmdir');
    await expectErrno(host.rmdir('/run/nodeeni/state.json'), 'ENOTDIR');
    await expectErrno(host.rmdir('/sys'), 'EBUSY');
    await expectErrno(host.rmdir('/sys/bus'), 'EPERM');
    await expectErrno(host.rmdir('/run/missing'), 'ENOENT');
  });

  it('writeFileAtomic replaces regular files and refuses sysfs and directories', async () => {
    const host = new SimHost({ files: { '/etc/pcidp/config.json': '{"resourceList":[]}' } });
    expect(await host.readFile('/etc/pcidp/config.json')).toBe('{"resourceList":[]}');
    await host.writeFileAtomic('/etc/pcidp/config.json', '{}\n', 0o600);
    expect(await host.readFile('/etc/pcidp/config.json')).toBe('{}\n');
    await expectErrno(host.writeFileAtomic('/etc/pcidp', 'x'), 'EISDIR');
    await expectErrno(host.writeFileAtomic('/sys/class/net/lo/mtu', '1500'), 'EACCES');
    await expectErrno(host.writeFileAtomic('/sys/new', 'x'), 'EACCES');
    await expectErrno(host.writeFileAtomic('/etc/missing/config.json', 'x'), 'ENOENT');
  });

  it('writes regular files like O_WRONLY without O_TRUNC: one write at offset 0', async () => {
    const host = new SimHost({ files: { '/etc/value': 'hello world' } });
    await host.write('/etc/value', 'HEY');
    expect(await host.readFile('/etc/value')).toBe('HEYlo world');
  });

  it('validates every path before touching anything', async () => {
    const host = newHost();
    const bad = ['relative/path', '/sys/class/net/ens5/../ens5/mtu', '/sys/./class', '/sys//class', '/sys/class/', '/sys/cl\0ass', ''];
    for (const p of bad) {
      for (const op of [
        () => host.readFile(p),
        () => host.write(p, '1500'),
        () => host.readdir(p),
        () => host.readlink(p),
        () => host.exists(p),
        () => host.mkdir(p),
        () => host.rmdir(p),
        () => host.writeFileAtomic(p, 'x'),
      ]) {
        const err = await op().catch((e: unknown) => e);
        expect(err, p).toBeInstanceOf(HostUsageError);
        expect((err as HostUsageError).code).toBe('ERR_INVALID_HOST_PATH');
      }
    }
    const empty = await host.write('/sys/class/net/ens5/mtu', '').catch((e: unknown) => e);
    expect(empty).toMatchObject({ code: 'ERR_EMPTY_WRITE' });
    expect(await host.readFile('/sys/class/net/ens5/mtu')).toBe('9001\n');
  });
});

describe('SimHost net-sysfs stores', () => {
  it('mtu: kstrtoul then ENA bounds 128..9216, EINVAL otherwise', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const mtu = '/sys/class/net/ens6/mtu';
    for (const [written, expected] of [['9001', '9001'], ['9216\n', '9216'], ['128', '128'], ['0x2328', '9000'], ['+1500', '1500']] as const) {
      await host.write(mtu, written);
      expect(await host.readFile(mtu)).toBe(`${expected}\n`);
    }
    for (const bad of ['9217', '127', '0', '-1', 'abc', '1500 ', ' 1500', '1500\n\n']) {
      await expectErrno(host.write(mtu, bad), 'EINVAL', 'write');
    }
    await expectErrno(host.write(mtu, '99999999999999999999999'), 'ERANGE');
    expect(await host.readFile(mtu)).toBe('1500\n');
    // (int) cast of the unsigned long: 2^32 + 1500 wraps to 1500, as on the kernel.
    await host.write(mtu, '9000');
    await host.write(mtu, String(2 ** 32 + 1500));
    expect(await host.readFile(mtu)).toBe('1500\n');
  });

  it('flags: IFF_UP opens and closes the device; volatile bits cannot be changed', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const flags = '/sys/class/net/ens6/flags';
    await host.write(flags, '0x1003');
    expect(await host.readFile(flags)).toBe('0x1003\n');
    expect(await host.readFile('/sys/class/net/ens6/operstate')).toBe('up\n');
    await host.write(flags, '4098'); // decimal 0x1002
    expect(await host.readFile(flags)).toBe('0x1002\n');
    expect(await host.readFile('/sys/class/net/ens6/operstate')).toBe('down\n');
    // BROADCAST is the driver's (kept); MULTICAST is settable (cleared); LOOPBACK cannot be set.
    await host.write(flags, `0x${(IFF.UP | IFF.LOOPBACK).toString(16)}`);
    expect(await host.readFile(flags)).toBe(`0x${(IFF.UP | IFF.BROADCAST).toString(16)}\n`);
    await expectErrno(host.write(flags, 'up'), 'EINVAL', 'write');
  });

  it('/proc/net/route has the primary default route and loses it when the device goes down', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    await host.write('/sys/class/net/ens6/flags', '0x1003');
    host.addRoute({ interfaceName: 'ens6', destination: '10.0.2.0/24' });
    const text = await host.readFile('/proc/net/route');
    const lines = text.split('\n');
    expect(lines[0]).toBe('Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT'.padEnd(127));
    expect(lines[1]).toBe('ens5\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0'.padEnd(127));
    expect(lines[2]).toBe('ens6\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0'.padEnd(127));
    expect(await readRoutes(host)).toEqual([
      { interfaceName: 'ens5', destination: '0.0.0.0', mask: '0.0.0.0', gateway: '10.0.0.1', flags: 3, metric: 0 },
      { interfaceName: 'ens6', destination: '10.0.2.0', mask: '255.255.255.0', gateway: '0.0.0.0', flags: 1, metric: 0 },
    ]);
    await host.write('/sys/class/net/ens6/flags', '0x1002');
    expect((await readRoutes(host)).map((r) => r.interfaceName)).toEqual(['ens5']);
    expect(() => host.addRoute({ interfaceName: 'ens6', destination: '0.0.0.0/0', gateway: '10.0.2.1' })).toThrow(/ENETDOWN/);
  });
});

describe('SimHost PCI driver binding (node-host-interfaces.md §6.3)', () => {
  const BDF = '0000:00:06.0';
  const dev = (f: string) => `/sys/bus/pci/devices/${BDF}/${f}`;

  async function driverOf(host: SimHost): Promise<string | undefined> {
    if (!(await host.exists(dev('driver')))) return undefined;
    return (await host.readlink(dev('driver'))).split('/').at(-1);
  }

  it('unbind is ENODEV unless the device is bound to that driver; bind is EBUSY while bound', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    await expectErrno(host.write('/sys/bus/pci/drivers/pci-stub/unbind', BDF), 'ENODEV', 'write');
    await expectErrno(host.write('/sys/bus/pci/drivers/ena/unbind', '0000:00:1f.0'), 'ENODEV');
    await expectErrno(host.write('/sys/bus/pci/drivers/ena/bind', BDF), 'EBUSY');
    // No override and no ID match: pci-stub cannot take it even when it is free.
    await host.write('/sys/bus/pci/drivers/ena/unbind', `${BDF}\n`);
    expect(await driverOf(host)).toBeUndefined();
    expect(await host.exists('/sys/class/net/ens6')).toBe(false);
    expect(await host.exists(dev('net'))).toBe(false);
    expect(await host.readdir('/sys/bus/pci/drivers/ena')).not.toContain(BDF);
    await expectErrno(host.write('/sys/bus/pci/drivers/pci-stub/bind', BDF), 'ENODEV');
    await expectErrno(host.write('/sys/bus/pci/drivers/ena/bind', '0000:00:1f.0'), 'ENODEV');
    await expectErrno(host.write('/sys/bus/pci/drivers/ena/unbind', BDF), 'ENODEV');
  });

  it('driver_override: the named driver is the only match, writing it unbinds nothing, "\\n" or "\\0" clears it', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    await host.write(dev('driver_override'), 'pci-stub\n');
    expect(await host.readFile(dev('driver_override'))).toBe('pci-stub\n');
    expect(await driverOf(host)).toBe('ena');
    expect(await host.readFile('/sys/class/net/ens6/address')).toBe(`${ENI_MAC}\n`);

    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await expectErrno(host.write('/sys/bus/pci/drivers/ena/bind', BDF), 'ENODEV');
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(await driverOf(host)).toBe('pci-stub');
    expect(await host.readlink(dev('driver'))).toBe('../../../bus/pci/drivers/pci-stub');
    expect(await host.exists('/sys/class/net/ens6')).toBe(false);

    // Rollback in the safe order: unbind, clear the override, probe.
    await host.write('/sys/bus/pci/drivers/pci-stub/unbind', BDF);
    await host.write(dev('driver_override'), '\n');
    expect(await host.readFile(dev('driver_override'))).toBe('(null)\n');
    await host.write('/sys/bus/pci/drivers_probe', `${BDF}\n`);
    expect(await driverOf(host)).toBe('ena');
    // A new netdev: same name and MAC, fresh ifindex, mtu back to 1500, down.
    const info = await readInterface(host, 'ens6');
    expect(info).toMatchObject({ macAddress: ENI_MAC, mtu: 1500, up: false, pciAddress: BDF });
    expect(await host.readFile('/sys/class/net/ens6/ifindex')).toBe('4\n');

    await host.write(dev('driver_override'), 'vfio-pci');
    await host.write(dev('driver_override'), '\0');
    expect(await host.readFile(dev('driver_override'))).toBe('(null)\n');
    await expectErrno(host.write(dev('driver_override'), 'x'.repeat(4095)), 'EINVAL');
  });

  it('drivers_probe: ENODEV for an unknown device, success even when nothing binds', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    await expectErrno(host.write('/sys/bus/pci/drivers_probe', '0000:00:1f.0'), 'ENODEV', 'write');
    // An override naming no loaded driver keeps every driver off.
    await host.write(dev('driver_override'), 'vfio-pci');
    await host.write('/sys/bus/pci/drivers/ena/unbind', BDF);
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(await driverOf(host)).toBeUndefined();
    // Already bound: probing again changes nothing.
    await host.write(dev('driver_override'), '\n');
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    await host.write('/sys/bus/pci/drivers_probe', BDF);
    expect(await driverOf(host)).toBe('ena');
  });

  it('unloading ena releases its devices; hotplug without a matching driver leaves the device unbound', async () => {
    const host = newHost();
    host.unloadDriver('ena');
    expect(await host.readdir('/sys/class/net')).toEqual(['lo']);
    expect(await host.exists('/sys/bus/pci/drivers/ena')).toBe(false);
    expect(host.hotplugEna({ macAddress: ENI_MAC })).toEqual({ pciAddress: BDF });
    expect(await host.readFile(dev('uevent'))).not.toContain('DRIVER=');
    expect(host.snapshot().routes).toEqual([]);
  });
});

describe('host/net.ts helpers on the simulated host', () => {
  it('finds interfaces by MAC case-insensitively and resolves the PCI address from the device link', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    const found = await findInterfaceByMac(host, ENI_MAC.toUpperCase());
    expect(found).toEqual({ name: 'ens6', macAddress: ENI_MAC, mtu: 1500, flags: 0x1002, up: false, operstate: 'down', hasDevice: true, pciAddress: '0000:00:06.0' });
    expect(await pciAddressOf(host, 'ens5')).toBe('0000:00:05.0');
    expect(await pciAddressOf(host, 'lo')).toBeUndefined();
    expect(await findInterfaceByMac(host, '02:00:00:00:99:99')).toBeUndefined();
    await expect(findInterfaceByMac(host, 'not-a-mac')).rejects.toThrow(/not a MAC/);
    await expect(readInterface(host, '../etc')).rejects.toThrow(/interface name/);
  });

  it('lo is found by the zero MAC only without physicalOnly; a device-backed match beats a virtual twin', async () => {
    const host = newHost();
    expect((await findInterfaceByMac(host, '00:00:00:00:00:00'))?.name).toBe('lo');
    expect(await findInterfaceByMac(host, '00:00:00:00:00:00', { physicalOnly: true })).toBeUndefined();

    host.hotplugEna({ macAddress: ENI_MAC });
    // A bridge that took its port's MAC.
    host.net.register({ name: 'br0', macAddress: ENI_MAC, mtu: 1500, minMtu: 68, maxMtu: 65535, flags: IFF.BROADCAST | IFF.MULTICAST, type: ARPHRD_ETHER });
    expect((await findInterfacesByMac(host, ENI_MAC)).map((i) => i.name).sort()).toEqual(['br0', 'ens6']);
    expect((await findInterfaceByMac(host, ENI_MAC))?.name).toBe('ens6');

    // Two PCI functions reporting one MAC cannot be told apart.
    host.pci.addDevice({ address: '0000:00:08.0', vendor: PCI_VENDOR_AMAZON, device: ENA_DEVICE_IDS.VF, classCode: PCI_CLASS_ETHERNET, macAddress: ENI_MAC });
    await expect(findInterfaceByMac(host, ENI_MAC)).rejects.toBeInstanceOf(AmbiguousMacError);
  });

  it('setMtu, setUp and setDown go through sysfs and are no-ops when already in place', async () => {
    const host = newHost();
    host.hotplugEna({ macAddress: ENI_MAC });
    await setMtu(host, 'ens6', 9001);
    await setUp(host, 'ens6');
    await setUp(host, 'ens6');
    expect(await readInterface(host, 'ens6')).toMatchObject({ mtu: 9001, up: true, operstate: 'up', flags: 0x1003 });
    await setDown(host, 'ens6');
    expect(await readInterface(host, 'ens6')).toMatchObject({ up: false, operstate: 'down', flags: 0x1002 });
    await expect(setMtu(host, 'ens6', 70000)).rejects.toSatisfy((e: unknown) => isErrno(e, 'EINVAL'));
    await expect(setUp(host, 'ens9')).rejects.toSatisfy((e: unknown) => isErrno(e, 'ENOENT'));
  });
});
