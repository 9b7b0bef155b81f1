// What this NodeENI wants in each node's device-plugin config, and whether a
// device is still there. Pure.
import type { DevicePluginEntry } from '../common/device-plugin.js';
import type { NodeENISpec } from '../common/types.js';
import type { ConfiguredAttachment, EntityState } from '../common/workflow-api.js';
import type { Plan } from './plan.js';

/** The driver the spec wants the device on: its DPDK driver, or undefined for the kernel's. */
export function wantedDpdkDriver(spec: NodeENISpec): string | undefined {
  return spec.enableDPDK ? (spec.dpdkDriver ?? 'vfio-pci') : undefined;
}

/** The device has to change drivers (DPDK toggled, or another DPDK driver): it leaves the device plugin first. */
export function bindingChangePending(done: ConfiguredAttachment, spec: NodeENISpec): boolean {
  return done.dpdk?.driver !== wantedDpdkDriver(spec);
}

/**
 * Every configured attachment's device under spec.dpdkResourceName, on the
 * driver it is bound to now. A device about to change drivers is left out, so
 * the plugin lets go of it before it is rebound; a spec change that keeps the
 * binding (MTU, security groups) keeps the device published.
 */
export function devicePluginEntries(plan: Plan, state: EntityState, spec: NodeENISpec): Map<string, DevicePluginEntry[]> {
  const byNode = new Map<string, DevicePluginEntry[]>();
  if (!spec.dpdkResourceName) return byNode;
  for (const d of plan.desired) {
    const done = state.configured[d.keyString];
    const eni = plan.eniByKey.get(d.keyString);
    if (!done || !eni || done.eniId !== eni.eniId || bindingChangePending(done, spec)) continue;
    const pciAddress = done.dpdk?.pciAddress ?? done.pciAddress;
    if (!pciAddress) continue;
    const list = byNode.get(d.key.nodeName) ?? [];
    list.push({ resourceName: spec.dpdkResourceName, driver: done.dpdk?.driver ?? 'ena', pciAddress });
    byNode.set(d.key.nodeName, list);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.pciAddress.localeCompare(b.pciAddress));
  return byNode;
}

/** The device may still be in the node's plugin config: in what we last sent, or a change is not confirmed yet. */
export function devicePublished(state: EntityState, nodeName: string, pciAddress: string): boolean {
  const dp = state.devicePlugin[nodeName];
  if (!dp) return false;
  if (!devicePluginSettled(state, nodeName)) return true;
  return (JSON.parse(dp.sent) as DevicePluginEntry[]).some((e) => e.pciAddress === pciAddress);
}

/** True when the node's device plugin has answered the latest request (or was never asked). */
export function devicePluginSettled(state: EntityState, nodeName: string | undefined): boolean {
  const dp = nodeName === undefined ? undefined : state.devicePlugin[nodeName];
  return !dp || (dp.answer?.requestId === dp.requestId && dp.answer.retrying !== true);
}
