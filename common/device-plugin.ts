// The SR-IOV network device plugin's config.json, computed declaratively from
// the entries every NodeENI wants on a node. Pure: shared by workflows,
// activities and tests.

/** One device a NodeENI publishes on one node. */
export interface DevicePluginEntry {
  /** `prefix/name` as in spec.dpdkResourceName; the prefix defaults to intel.com. */
  resourceName: string;
  /** `ena` for a kernel-bound SR-IOV ENI, the DPDK driver (vfio-pci, …) when bound for DPDK. */
  driver: string;
  pciAddress: string;
}

export interface DevicePluginSelector {
  drivers: string[];
  pciAddresses: string[];
}

export interface DevicePluginResource {
  resourcePrefix: string;
  resourceName: string;
  selectors: DevicePluginSelector[];
}

export interface DevicePluginConfig {
  resourceList: DevicePluginResource[];
}

export const DEFAULT_RESOURCE_PREFIX = 'intel.com';
export const DEFAULT_DEVICE_PLUGIN_CONFIG_PATH = '/etc/pcidp/config.json';

/**
 * Written when no NodeENI wants a device on the node: the plugin exits on an
 * empty resourceList ("no resource configuration; exiting") and would
 * crash-loop. Selectors are ANDed, so a device must sit at 0000:00:00.0 *and*
 * be bound to a driver named `nodeeni-placeholder`. No kernel driver has that
 * name, and 0000:00:00.0 is the host bridge on EC2 (ENA devices start at
 * 0000:00:05.0), so the pool stays empty and the plugin skips it ("no devices
 * in device pool, skipping") while it keeps running. The prefix is ours, so it
 * cannot collide with a resource a user asks for.
 */
export const PLACEHOLDER_RESOURCE: Readonly<DevicePluginResource> = Object.freeze({
  resourcePrefix: 'nodeeni.networking.k8s.aws',
  resourceName: 'placeholder',
  selectors: [{ drivers: ['nodeeni-placeholder'], pciAddresses: ['0000:00:00.0'] }],
});
const PLACEHOLDER_KEY = `${PLACEHOLDER_RESOURCE.resourcePrefix}/${PLACEHOLDER_RESOURCE.resourceName}`;

const RESOURCE_NAME = /^[a-zA-Z0-9_]{1,63}$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const DRIVER_NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

export class InvalidDevicePluginEntryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDevicePluginEntryError';
  }
}

/** `prefix/name` or `name` (prefix intel.com), with the device plugin's and Kubernetes' rules. */
export function parseResourceName(s: string): { prefix: string; name: string } {
  if (typeof s !== 'string') throw new InvalidDevicePluginEntryError(`resource name must be a string, got ${typeof s}`);
  const parts = s.split('/');
  if (parts.length > 2) throw new InvalidDevicePluginEntryError(`resource name ${JSON.stringify(s)} has more than one "/" (want prefix/name)`);
  const [prefix, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : [DEFAULT_RESOURCE_PREFIX, parts[0]!];
  if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
    throw new InvalidDevicePluginEntryError(`resource prefix ${JSON.stringify(prefix)} of ${JSON.stringify(s)} is not a lowercase DNS subdomain (e.g. intel.com)`);
  }
  if (!RESOURCE_NAME.test(name)) {
    throw new InvalidDevicePluginEntryError(`resource name ${JSON.stringify(name)} of ${JSON.stringify(s)} must be 1-63 letters, digits or "_"`);
  }
  return { prefix, name };
}

/** sysfs spells PCI addresses in lower case; the plugin compares them as strings. */
export function normalizePciAddress(s: string): string {
  const lower = typeof s === 'string' ? s.toLowerCase() : '';
  if (!PCI_ADDRESS.test(lower)) throw new InvalidDevicePluginEntryError(`PCI address ${JSON.stringify(s)} is not domain:bus:device.function (e.g. 0000:00:07.0)`);
  return lower;
}

/** Why an entry cannot go into the config, or undefined when it can. */
export function devicePluginEntryProblem(e: DevicePluginEntry): string | undefined {
  try {
    const { prefix, name } = parseResourceName(e.resourceName);
    if (`${prefix}/${name}` === PLACEHOLDER_KEY) return `resource name ${PLACEHOLDER_KEY} is reserved for the placeholder`;
    normalizePciAddress(e.pciAddress);
    if (typeof e.driver !== 'string' || !DRIVER_NAME.test(e.driver)) return `driver ${JSON.stringify(e.driver)} is not a kernel driver name`;
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

interface Claim {
  key: string;
  prefix: string;
  name: string;
  driver: string;
}

const compareClaims = (a: Claim, b: Claim) => a.key.localeCompare(b.key) || a.driver.localeCompare(b.driver);

/**
 * A PCI address wanted under more than one resource or driver. The plugin
 * gives a device to the first pool that matches, and a device has one driver,
 * so only `kept` can be served; buildDevicePluginConfig drops the others.
 */
export interface DevicePluginConflict {
  pciAddress: string;
  kept: { resourceName: string; driver: string };
  dropped: Array<{ resourceName: string; driver: string }>;
}

function claimsByAddress(entries: DevicePluginEntry[]): Map<string, Claim[]> {
  const byAddress = new Map<string, Claim[]>();
  for (const e of entries) {
    const problem = devicePluginEntryProblem(e);
    if (problem) throw new InvalidDevicePluginEntryError(`invalid device plugin entry ${JSON.stringify(e)}: ${problem}`);
    const { prefix, name } = parseResourceName(e.resourceName);
    const claim = { key: `${prefix}/${name}`, prefix, name, driver: e.driver };
    const address = normalizePciAddress(e.pciAddress);
    const list = byAddress.get(address) ?? [];
    if (!list.some((c) => compareClaims(c, claim) === 0)) list.push(claim);
    byAddress.set(address, list.sort(compareClaims));
  }
  return byAddress;
}

/** Addresses claimed more than once, each resolved as buildDevicePluginConfig resolves it. */
export function findDevicePluginConflicts(entries: DevicePluginEntry[]): DevicePluginConflict[] {
  return [...claimsByAddress(entries)]
    .filter(([, claims]) => claims.length > 1)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([pciAddress, [kept, ...dropped]]) => ({
      pciAddress,
      kept: { resourceName: kept!.key, driver: kept!.driver },
      dropped: dropped.map((c) => ({ resourceName: c.key, driver: c.driver })),
    }));
}

/**
 * One resource per prefix/name, one selector per driver, addresses merged
 * across NodeENIs (the original kept one address per resource name), sorted
 * and deduplicated, so equal inputs in any order give byte-equal files.
 * Throws InvalidDevicePluginEntryError for an entry devicePluginEntryProblem rejects.
 */
export function buildDevicePluginConfig(entries: DevicePluginEntry[]): DevicePluginConfig {
  const resources = new Map<string, { prefix: string; name: string; byDriver: Map<string, string[]> }>();
  for (const [address, [claim]] of claimsByAddress(entries)) {
    const { key, prefix, name, driver } = claim!;
    const r = resources.get(key) ?? { prefix, name, byDriver: new Map<string, string[]>() };
    r.byDriver.set(driver, [...(r.byDriver.get(driver) ?? []), address]);
    resources.set(key, r);
  }
  if (resources.size === 0) return { resourceList: [clonePlaceholder()] };
  const resourceList = [...resources.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, r]) => ({
      resourcePrefix: r.prefix,
      resourceName: r.name,
      selectors: [...r.byDriver.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([driver, addresses]) => ({ drivers: [driver], pciAddresses: [...new Set(addresses)].sort() })),
    }));
  return { resourceList };
}

function clonePlaceholder(): DevicePluginResource {
  return { ...PLACEHOLDER_RESOURCE, selectors: PLACEHOLDER_RESOURCE.selectors.map((s) => ({ drivers: [...s.drivers], pciAddresses: [...s.pciAddresses] })) };
}

export function isPlaceholderResource(r: Pick<DevicePluginResource, 'resourcePrefix' | 'resourceName'>): boolean {
  return `${r.resourcePrefix}/${r.resourceName}` === PLACEHOLDER_KEY;
}

/** Stable JSON: fixed key order, 2-space indent, trailing newline. */
export function serializeDevicePluginConfig(cfg: DevicePluginConfig): string {
  const canonical = {
    resourceList: cfg.resourceList.map((r) => ({
      resourcePrefix: r.resourcePrefix,
      resourceName: r.resourceName,
      selectors: r.selectors.map((s) => ({ drivers: [...s.drivers], pciAddresses: [...s.pciAddresses] })),
    })),
  };
  return `${JSON.stringify(canonical, null, 2)}\n`;
}

/**
 * Reads back a config file written by serializeDevicePluginConfig (or by
 * hand, in the same list-style schema); undefined when it is not one.
 */
export function parseDevicePluginConfig(text: string): DevicePluginConfig | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const list = (raw as { resourceList?: unknown } | null)?.resourceList;
  if (!Array.isArray(list)) return undefined;
  const strings = (v: unknown): string[] | undefined => (v === undefined ? [] : Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined);
  const resourceList: DevicePluginResource[] = [];
  for (const r of list as Array<Record<string, unknown>>) {
    if (typeof r !== 'object' || r === null || typeof r.resourceName !== 'string' || !Array.isArray(r.selectors)) return undefined;
    const selectors: DevicePluginSelector[] = [];
    for (const s of r.selectors as Array<Record<string, unknown>>) {
      const drivers = strings(s?.drivers);
      const pciAddresses = strings(s?.pciAddresses);
      if (!drivers || !pciAddresses) return undefined;
      selectors.push({ drivers, pciAddresses });
    }
    resourceList.push({ resourcePrefix: typeof r.resourcePrefix === 'string' && r.resourcePrefix !== '' ? r.resourcePrefix : DEFAULT_RESOURCE_PREFIX, resourceName: r.resourceName, selectors });
  }
  return { resourceList };
}

/** What is wrong with a config before it is written; [] when the plugin will accept it. */
export function devicePluginConfigProblems(cfg: DevicePluginConfig): string[] {
  const problems: string[] = [];
  if (!Array.isArray(cfg?.resourceList) || cfg.resourceList.length === 0) return ['resourceList is empty: the device plugin exits on start'];
  const seen = new Set<string>();
  for (const r of cfg.resourceList) {
    const key = `${r.resourcePrefix}/${r.resourceName}`;
    try {
      parseResourceName(key);
    } catch (err) {
      problems.push((err as Error).message);
    }
    if (seen.has(key)) problems.push(`resource ${key} is listed twice: the device plugin exits on start`);
    seen.add(key);
    if (!Array.isArray(r.selectors) || r.selectors.length === 0) problems.push(`resource ${key} has no selectors and would match every device`);
    for (const s of r.selectors ?? []) {
      if (!s.pciAddresses?.length) problems.push(`resource ${key} has a selector without pciAddresses`);
      for (const a of s.pciAddresses ?? []) if (!PCI_ADDRESS.test(a)) problems.push(`resource ${key}: PCI address ${JSON.stringify(a)} is not lower-case domain:bus:device.function`);
      for (const d of s.drivers ?? []) if (!DRIVER_NAME.test(d)) problems.push(`resource ${key}: driver ${JSON.stringify(d)} is not a kernel driver name`);
    }
  }
  return problems;
}

/** `prefix/name` → number of devices the config lists, without the placeholder. */
export function resourcesOf(cfg: DevicePluginConfig): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of cfg.resourceList) {
    if (isPlaceholderResource(r)) continue;
    const addresses = new Set(r.selectors.flatMap((s) => s.pciAddresses));
    const key = `${r.resourcePrefix}/${r.resourceName}`;
    out[key] = (out[key] ?? 0) + addresses.size;
  }
  return out;
}

/** Where the SR-IOV device plugin usually runs, and the labels its pods carry (seed 001's defaults and the common operators'). */
export const DEFAULT_DEVICE_PLUGIN_NAMESPACES: readonly string[] = Object.freeze([
  'kube-system',
  'sriov-network-operator',
  'openshift-sriov-network-operator',
  'intel-device-plugins-operator',
  'default',
]);
export const DEFAULT_DEVICE_PLUGIN_SELECTORS: readonly string[] = Object.freeze([
  'app=sriov-device-plugin',
  'app=kube-sriov-device-plugin',
  'name=sriov-device-plugin',
  'component=sriov-device-plugin',
  'app=sriovdp',
]);
