// What this NodeENI wants in each node's device-plugin config: every ready
// attachment's device under spec.dpdkResourceName. Pure.
import type { DevicePluginEntry } from '../common/device-plugin.js';
import type { NodeENISpec } from '../common/types.js';
import type { EntityState } from '../common/workflow-api.js';
import type { Plan } from './plan.js';

export function devicePluginEntries(plan: Plan, state: EntityState, spec: NodeENISpec, generation: number): Map<string, DevicePluginEntry[]> {
  const byNode = new Map<string, DevicePluginEntry[]>();
  if (!spec.dpdkResourceName) return byNode;
  for (const d of plan.desired) {
    const done = state.configured[d.keyString];
    const eni = plan.eniByKey.get(d.keyString);
    if (!done || !eni || done.eniId !== eni.eniId || done.generation !== generation) continue;
    const pciAddress = done.dpdk?.pciAddress ?? done.pciAddress;
    if (!pciAddress) continue;
    const list = byNode.get(d.key.nodeName) ?? [];
    list.push({ resourceName: spec.dpdkResourceName, driver: done.dpdk?.driver ?? 'ena', pciAddress });
    byNode.set(d.key.nodeName, list);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.pciAddress.localeCompare(b.pciAddress));
  return byNode;
}

/** True when the node's device plugin has answered the latest request (or was never asked). */
export function devicePluginSettled(state: EntityState, nodeName: string | undefined): boolean {
  const dp = nodeName === undefined ? undefined : state.devicePlugin[nodeName];
  return !dp || (dp.answer?.requestId === dp.requestId && dp.answer.retrying !== true);
}
