// Writing the device plugin config on a node and restarting the plugin, on the
// real kube-apiserver: a simulated host holds the file and the PCI devices, a
// fake kubelet runs the plugin pod (reads the config once at start, publishes
// allocatable), and the activities run in a mocked activity context.
import { mkdtemp, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { buildDevicePluginConfig, resourcesOf, serializeDevicePluginConfig, type DevicePluginEntry } from '../common/device-plugin.js';
import { createDevicePluginActivities, validateDevicePluginConfigPath } from '../activities/node/device-plugin-activities.js';
import {
  createDevicePluginKubeActivities,
  DEFAULT_DEVICE_PLUGIN_NAMESPACES,
  DEFAULT_DEVICE_PLUGIN_SELECTORS,
  type RestartDevicePluginInput,
} from '../activities/kube/device-plugin-activities.js';
import type { Host } from '../host/host.js';
import { createRealHost } from '../host/real-host.js';
import { SimHost } from '../host/sim/sim-host.js';
import { startFakeKubelet, type FakeKubelet } from '../sandbox/fake-kubelet.js';
import { registerNodes } from '../sandbox/kube-nodes.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { getBackends, kubeConfigFor } from './support/backends.js';

const CONFIG = '/etc/pcidp/config.json';
const OTHER_NS = 'sriov-network-operator';

let kc: KubeConfig;
let core: CoreV1Api;
const nodes: string[] = [];
const kubelets: FakeKubelet[] = [];
const tmpDirs: string[] = [];

beforeAll(() => {
  kc = kubeConfigFor(getBackends());
  core = kc.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  for (const k of kubelets.splice(0)) await k.stop();
});

afterAll(async () => {
  for (const name of nodes) {
    for (const namespace of ['kube-system', OTHER_NS]) {
      const pods = await core.listNamespacedPod({ namespace, fieldSelector: `spec.nodeName=${name}` }).catch(() => ({ items: [] }));
      for (const p of pods.items) await core.deleteNamespacedPod({ name: p.metadata!.name!, namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
    }
    await core.deleteNode({ name }).catch(() => undefined);
  }
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

async function newNode(): Promise<string> {
  const name = `dp-${randomBytes(4).toString('hex')}`;
  await registerNodes(kc, [{ name, instanceId: `i-0${randomBytes(8).toString('hex')}`, az: 'us-east-1a' }]);
  nodes.push(name);
  return name;
}

/** A node with the primary ENA at 0000:00:05.0 and two secondary ENAs at 06.0 and 07.0, bound to ena. */
function simHost(): SimHost {
  const host = new SimHost({ primary: { macAddress: '02:00:00:00:00:01' } });
  host.hotplugEna({ macAddress: '02:00:00:00:00:06' });
  host.hotplugEna({ macAddress: '02:00:00:00:00:07' });
  return host;
}

async function kubelet(opts: Omit<Parameters<typeof startFakeKubelet>[0], 'kc'>): Promise<FakeKubelet> {
  const k = await startFakeKubelet({ kc, pollMs: 100, ...opts });
  kubelets.push(k);
  return k;
}

async function pluginPods(nodeName: string, namespace = 'kube-system') {
  return (await core.listNamespacedPod({ namespace, fieldSelector: `spec.nodeName=${nodeName}` })).items;
}

async function nodeStatus(nodeName: string) {
  const s = (await core.readNodeStatus({ name: nodeName })).status;
  return { capacity: s?.capacity ?? {}, allocatable: s?.allocatable ?? {} };
}

/** Failures are asserted; the mock's own warnings about them would only be noise. */
const mockEnv = (info: { attempt?: number } = {}) => new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
/** MockActivityEnvironment.run cannot infer the result type; this keeps it. */
function inContext<A extends unknown[], R>(e: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return e.run(fn, ...args) as Promise<R>;
}
const sharedEnv = mockEnv();
const env = { run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) => inContext(sharedEnv, fn, ...args) };
const kube = () => createDevicePluginKubeActivities({ kc, pollMs: 100 });
const restartInput = (nodeName: string, expect: Record<string, number>, extra: Partial<RestartDevicePluginInput> = {}): RestartDevicePluginInput => ({
  nodeName,
  namespaces: [...DEFAULT_DEVICE_PLUGIN_NAMESPACES],
  labelSelectors: [...DEFAULT_DEVICE_PLUGIN_SELECTORS],
  expect,
  timeoutMs: 20_000,
  ...extra,
});
const entry = (resourceName: string, pciAddress: string, driver = 'ena'): DevicePluginEntry => ({ resourceName, driver, pciAddress });

describe('restartDevicePlugin with a fake kubelet', () => {
  it('publishes a written config after a restart, and drops a removed resource to 0 after the next (seed 000)', async () => {
    const nodeName = await newNode();
    const host = simHost();
    await kubelet({ nodeName, host });
    const write = createDevicePluginActivities({ host, nodeName, configPath: CONFIG }).writeDevicePluginConfig;

    // Without a config the plugin crash-loops: nothing Ready, nothing advertised.
    const [first] = await pluginPods(nodeName);
    expect(first?.metadata?.labels).toMatchObject({ app: 'sriovdp', name: 'sriov-device-plugin' });
    expect(first?.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('CrashLoopBackOff');
    expect(first?.status?.containerStatuses?.[0]?.lastState?.terminated?.message).toMatch(/error reading \/etc\/pcidp\/config.json/);

    // Two NodeENIs under one resource name: both devices are advertised.
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_a', '0000:00:07.0'), entry('intel.com/sriov_a', '0000:00:06.0')]);
    expect(await env.run(write, { config: cfg })).toEqual({ changed: true, path: CONFIG });
    const up = await env.run(kube().restartDevicePlugin, restartInput(nodeName, resourcesOf(cfg)));
    expect(up).toMatchObject({ podFound: true, restarted: true, namespace: 'kube-system', oldPod: first!.metadata!.name });
    expect(up.newPod).not.toBe(up.oldPod);
    expect(up.allocatable['intel.com/sriov_a']).toBe('2');
    expect(up.message).toContain('Ready');
    const [second] = await pluginPods(nodeName);
    expect(second!.metadata!.name).toBe(up.newPod);
    expect(second!.metadata!.uid).not.toBe(first!.metadata!.uid);
    expect(second!.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(await nodeStatus(nodeName)).toEqual({ capacity: { 'intel.com/sriov_a': '2' }, allocatable: { 'intel.com/sriov_a': '2' } });

    // The last NodeENI goes: the placeholder keeps the plugin alive, the resource stays at 0.
    const empty = buildDevicePluginConfig([]);
    const written = await env.run(write, { config: empty });
    expect(written).toEqual({ changed: true, path: CONFIG, previous: cfg });
    const down = await env.run(kube().restartDevicePlugin, restartInput(nodeName, { ...Object.fromEntries(Object.keys(resourcesOf(cfg)).map((k) => [k, 0])), ...resourcesOf(empty) }));
    expect(down).toMatchObject({ podFound: true, restarted: true, oldPod: up.newPod });
    expect(down.allocatable['intel.com/sriov_a']).toBe('0');
    // The placeholder matches no device, so the plugin registers nothing for it.
    expect(await nodeStatus(nodeName)).toEqual({ capacity: { 'intel.com/sriov_a': '0' }, allocatable: { 'intel.com/sriov_a': '0' } });
    const [third] = await pluginPods(nodeName);
    expect(third!.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('advertises only devices bound to the listed driver, as the plugin discovers them', async () => {
    const nodeName = await newNode();
    const host = simHost();
    await kubelet({ nodeName, host });
    const write = createDevicePluginActivities({ host, nodeName, configPath: CONFIG }).writeDevicePluginConfig;
    // 06.0 is bound to ena, not vfio-pci; 0f.0 does not exist.
    const cfg = buildDevicePluginConfig([entry('intel.com/kernel', '0000:00:07.0'), entry('intel.com/dpdk', '0000:00:06.0', 'vfio-pci'), entry('intel.com/kernel', '0000:00:0f.0')]);
    await env.run(write, { config: cfg });
    const res = await env.run(kube().restartDevicePlugin, restartInput(nodeName, { 'intel.com/kernel': 1, 'intel.com/dpdk': 0 }));
    expect(res.restarted).toBe(true);
    expect((await nodeStatus(nodeName)).allocatable).toEqual({ 'intel.com/kernel': '1' });
  });

  it('finds a plugin in another namespace under another label, and leaves other nodes alone', async () => {
    const nodeName = await newNode();
    const neighbour = await newNode();
    const host = simHost();
    await kubelet({ nodeName, host, namespace: OTHER_NS, labels: { app: 'sriov-device-plugin' } });
    await kubelet({ nodeName: neighbour, host: simHost() });
    const [neighbourPod] = await pluginPods(neighbour);
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_ns', '0000:00:06.0')]);
    await env.run(createDevicePluginActivities({ host, nodeName, configPath: CONFIG }).writeDevicePluginConfig, { config: cfg });

    const res = await env.run(kube().restartDevicePlugin, restartInput(nodeName, resourcesOf(cfg)));
    expect(res).toMatchObject({ podFound: true, restarted: true, namespace: OTHER_NS });
    expect(res.allocatable['intel.com/sriov_ns']).toBe('1');
    expect((await pluginPods(nodeName, OTHER_NS)).map((p) => p.metadata!.name)).toEqual([res.newPod]);
    // The neighbour's pod matches the same selectors in kube-system, but runs on another node.
    expect((await pluginPods(neighbour)).map((p) => p.metadata!.uid)).toEqual([neighbourPod!.metadata!.uid]);
  });

  it('answers podFound false with a message when no plugin runs on the node, without throwing', async () => {
    const nodeName = await newNode();
    const res = await env.run(kube().restartDevicePlugin, restartInput(nodeName, { 'intel.com/sriov_a': 1 }));
    expect(res).toEqual({ podFound: false, restarted: false, allocatable: {}, message: expect.stringContaining(`no SR-IOV device plugin pod on node ${nodeName}`) });
    expect(res.message).toContain('sriov-network-operator');
    expect(res.message).toContain('app=sriovdp');
    const gone = await env.run(kube().restartDevicePlugin, restartInput(`dp-missing-${randomBytes(3).toString('hex')}`, {}));
    expect(gone).toMatchObject({ podFound: false, restarted: false, message: expect.stringContaining('does not exist') });
  });

  it('converges on retry: an attempt after a successful restart does not restart again', async () => {
    const nodeName = await newNode();
    const host = simHost();
    await kubelet({ nodeName, host });
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_r', '0000:00:07.0')]);
    await env.run(createDevicePluginActivities({ host, nodeName, configPath: CONFIG }).writeDevicePluginConfig, { config: cfg });
    const done = await env.run(kube().restartDevicePlugin, restartInput(nodeName, resourcesOf(cfg)));
    const retry = mockEnv({ attempt: 2 });
    const again = await inContext(retry, kube().restartDevicePlugin, restartInput(nodeName, resourcesOf(cfg)));
    expect(again).toMatchObject({ podFound: true, restarted: true, newPod: done.newPod, message: expect.stringContaining('earlier attempt') });
    expect((await pluginPods(nodeName)).map((p) => p.metadata!.name)).toEqual([done.newPod]);
    // A first attempt always restarts, even when the counts already match (the content may differ).
    const fresh = await env.run(kube().restartDevicePlugin, restartInput(nodeName, resourcesOf(cfg)));
    expect(fresh.oldPod).toBe(done.newPod);
    expect(fresh.newPod).not.toBe(done.newPod);
  });

  it('fails retryably with DevicePluginNotReady when the new plugin crashes, heartbeating while it waits', async () => {
    const nodeName = await newNode();
    // A config the plugin exits on (written behind the activity's back: it refuses empty lists).
    const host = new SimHost({ primary: { macAddress: '02:00:00:00:00:01' }, files: { [CONFIG]: '{"resourceList": []}\n' } });
    await kubelet({ nodeName, host });
    const [pod] = await pluginPods(nodeName);
    expect(pod!.status?.containerStatuses?.[0]?.lastState?.terminated?.message).toBe('no resource configuration; exiting');
    const watched = mockEnv();
    const beats: unknown[] = [];
    watched.on('heartbeat', (d: unknown) => beats.push(d));
    await expect(inContext(watched, kube().restartDevicePlugin, restartInput(nodeName, {}, { timeoutMs: 1500 }))).rejects.toMatchObject({
      type: 'DevicePluginNotReady',
      nonRetryable: false,
      message: expect.stringContaining('waited 1500 ms for a Ready device plugin pod name=sriov-device-plugin in kube-system'),
    });
    expect(beats.length).toBeGreaterThan(0);
  });

  it('fails with DevicePluginNotReady when allocatable never matches, naming the mismatch', async () => {
    const nodeName = await newNode();
    const host = simHost();
    await kubelet({ nodeName, host });
    const cfg = buildDevicePluginConfig([entry('intel.com/sriov_m', '0000:00:06.0')]);
    await env.run(createDevicePluginActivities({ host, nodeName, configPath: CONFIG }).writeDevicePluginConfig, { config: cfg });
    await expect(env.run(kube().restartDevicePlugin, restartInput(nodeName, { 'intel.com/sriov_m': 3 }, { timeoutMs: 1500 }))).rejects.toMatchObject({
      type: 'DevicePluginNotReady',
      message: expect.stringContaining('intel.com/sriov_m is 1, want 3'),
    });
  });

  it.each([
    ['a node name that is not a DNS subdomain', { nodeName: 'Node_1' }, /node name "Node_1"/],
    ['a set-based selector', { labelSelectors: ['app in (sriovdp)'] }, /is not key=value/],
    ['a selector with a bad value', { labelSelectors: ['app=sriov dp'] }, /is not key=value|not a label value/],
    ['no namespaces', { namespaces: [] }, /at least one namespace/],
    ['a namespace that is not a DNS label', { namespaces: ['Kube_System'] }, /namespace "Kube_System"/],
    ['a negative expected count', { expect: { 'intel.com/a': -1 } }, /non-negative integer/],
    ['an expected resource without a prefix', { expect: { a: 1 } }, /must be prefix\/name/],
    ['a zero timeout', { timeoutMs: 0 }, /timeoutMs/],
  ] as Array<[string, Partial<RestartDevicePluginInput>, RegExp]>)('rejects %s without touching the cluster', async (_what, change, message) => {
    await expect(env.run(kube().restartDevicePlugin, { ...restartInput('dp-valid', {}), ...change })).rejects.toMatchObject({
      type: 'InvalidDevicePluginRestartInput',
      nonRetryable: true,
      message: expect.stringMatching(message),
    });
  });
});

describe('writeDevicePluginConfig', () => {
  /** Counts atomic writes, so "unchanged" is proven by no write at all. */
  function counting(inner: Host): Host & { atomicWrites: number } {
    const h = {
      root: inner.root,
      atomicWrites: 0,
      readFile: (p: string) => inner.readFile(p),
      write: (p: string, d: string) => inner.write(p, d),
      readdir: (p: string) => inner.readdir(p),
      readlink: (p: string) => inner.readlink(p),
      exists: (p: string) => inner.exists(p),
      mkdir: (p: string) => inner.mkdir(p),
      rmdir: (p: string) => inner.rmdir(p),
      writeFileAtomic: (p: string, d: string, m?: number) => {
        h.atomicWrites++;
        return inner.writeFileAtomic(p, d, m);
      },
    };
    return h;
  }

  const cfg = buildDevicePluginConfig([entry('intel.com/sriov_w', '0000:00:07.0')]);

  it('creates the directory, writes once, and does nothing when the content is already there', async () => {
    const host = counting(new SimHost());
    const write = createDevicePluginActivities({ host, nodeName: 'n', configPath: '/var/lib/pcidp/nested/config.json' }).writeDevicePluginConfig;
    expect(await env.run(write, { config: cfg })).toEqual({ changed: true, path: '/var/lib/pcidp/nested/config.json' });
    expect(await host.readFile('/var/lib/pcidp/nested/config.json')).toBe(serializeDevicePluginConfig(cfg));
    expect(await env.run(write, { config: cfg })).toEqual({ changed: false, path: '/var/lib/pcidp/nested/config.json', previous: cfg });
    expect(host.atomicWrites).toBe(1);
  });

  it('replaces an unparsable or differently formatted file, reporting no previous config for garbage', async () => {
    const host = counting(new SimHost({ files: { [CONFIG]: '{ not json' } }));
    const write = createDevicePluginActivities({ host, nodeName: 'n', configPath: CONFIG }).writeDevicePluginConfig;
    expect(await env.run(write, { config: cfg })).toEqual({ changed: true, path: CONFIG });
    await host.writeFileAtomic(CONFIG, JSON.stringify(cfg));
    expect(await env.run(write, { config: cfg })).toEqual({ changed: true, path: CONFIG, previous: cfg });
    expect(await host.readFile(CONFIG)).toBe(serializeDevicePluginConfig(cfg));
  });

  it('on a real filesystem: renames a new file into place, and leaves mtime and inode alone when unchanged', async () => {
    const root = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'dp-host-'));
    tmpDirs.push(root);
    const write = createDevicePluginActivities({ host: createRealHost(root), nodeName: 'n', configPath: CONFIG }).writeDevicePluginConfig;
    const file = path.join(root, CONFIG);
    expect((await env.run(write, { config: cfg })).changed).toBe(true);
    const before = await stat(file);
    expect(before.mode & 0o777).toBe(0o644);
    await new Promise((r) => setTimeout(r, 20));
    expect((await env.run(write, { config: cfg })).changed).toBe(false);
    const after = await stat(file);
    expect([after.mtimeMs, after.ino]).toEqual([before.mtimeMs, before.ino]);
    // A change is a rename of a complete temp file: a new inode, and no temp file left behind.
    const next = buildDevicePluginConfig([entry('intel.com/sriov_w', '0000:00:07.0'), entry('intel.com/sriov_w', '0000:00:08.0')]);
    expect((await env.run(write, { config: next })).changed).toBe(true);
    expect((await stat(file)).ino).not.toBe(before.ino);
    expect(await readFile(file, 'utf8')).toBe(serializeDevicePluginConfig(next));
    expect(await readdir(path.dirname(file))).toEqual(['config.json']);
  });

  it.each([
    ['relative', 'etc/pcidp/config.json'],
    ['a .. segment', '/etc/pcidp/../shadow.json'],
    ['a . segment', '/etc/pcidp/./config.json'],
    ['an empty segment', '/etc//pcidp/config.json'],
    ['a NUL byte', '/etc/pcidp/config.json\0.json'],
    ['not a .json file', '/etc/shadow'],
    ['a directory', '/etc/pcidp/'],
    ['a bare .json', '/etc/pcidp/.json'],
    ['procfs', '/proc/self/environ.json'],
    ['sysfs', '/sys/bus/pci/drivers/ena/bind.json'],
    ['devfs', '/dev/sda.json'],
    ['the empty string', ''],
  ])('rejects a path with %s', (_what, p) => {
    expect(() => createDevicePluginActivities({ host: new SimHost(), nodeName: 'n', configPath: p })).toThrow(/device plugin config path/);
    expect(() => validateDevicePluginConfigPath(p)).toThrow();
  });

  it('refuses to follow a symlink out of the host root', async () => {
    const base = await mkdtemp(path.join(PROJECT_ROOT, '.tmp', 'dp-escape-'));
    tmpDirs.push(base);
    const root = path.join(base, 'root');
    const outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'etc'), { recursive: true });
    await mkdir(outside);
    await symlink(outside, path.join(root, 'etc', 'pcidp'));
    const write = createDevicePluginActivities({ host: createRealHost(root), nodeName: 'n', configPath: CONFIG }).writeDevicePluginConfig;
    await expect(env.run(write, { config: cfg })).rejects.toMatchObject({ type: 'DevicePluginConfigPathUnusable', nonRetryable: true, message: expect.stringContaining('outside the host root') });
    expect(await readdir(outside)).toEqual([]);
    // A symlinked file is not replaced either.
    await mkdir(path.join(root, 'etc', 'real'));
    await writeFile(path.join(outside, 'target.json'), 'x');
    await symlink(path.join(outside, 'target.json'), path.join(root, 'etc', 'real', 'config.json'));
    const viaFile = createDevicePluginActivities({ host: createRealHost(root), nodeName: 'n', configPath: '/etc/real/config.json' }).writeDevicePluginConfig;
    await expect(env.run(viaFile, { config: cfg })).rejects.toMatchObject({ nonRetryable: true });
    expect(await readFile(path.join(outside, 'target.json'), 'utf8')).toBe('x');
  });

  it('refuses a config the plugin would exit on', async () => {
    const host = counting(new SimHost());
    const write = createDevicePluginActivities({ host, nodeName: 'n', configPath: CONFIG }).writeDevicePluginConfig;
    await expect(env.run(write, { config: { resourceList: [] } })).rejects.toMatchObject({ type: 'InvalidDevicePluginConfig', nonRetryable: true, message: expect.stringContaining('resourceList is empty') });
    expect(host.atomicWrites).toBe(0);
    expect(await host.exists(CONFIG)).toBe(false);
  });
});
