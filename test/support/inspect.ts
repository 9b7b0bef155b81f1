// Read-only views used by assertions: EC2 by tag, NodeENI conditions, Events.
import { DescribeNetworkInterfacesCommand, type EC2Client, type NetworkInterface } from '@aws-sdk/client-ec2';
import type { CoreV1Event, CoreV1Api } from '@kubernetes/client-node';
import { defaultPayloadConverter } from '@temporalio/common';
import type proto from '@temporalio/proto';
import { TAG } from '../../common/names.js';
import type { Condition, NodeENIObject } from '../../common/types.js';

export async function enisOf(ec2: EC2Client, uid: string): Promise<NetworkInterface[]> {
  const res = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: `tag:${TAG.nodeEniUid}`, Values: [uid] }] }));
  return res.NetworkInterfaces ?? [];
}

export function tagOf(ni: NetworkInterface, key: string): string | undefined {
  return ni.TagSet?.find((t) => t.Key === key)?.Value;
}

export function conditionOf(o: NodeENIObject | undefined, type: string): Condition | undefined {
  return o?.status?.conditions?.find((c) => c.type === type);
}

export function isReady(o: NodeENIObject | undefined, ready: number): boolean {
  return conditionOf(o, 'Ready')?.status === 'True' && o?.status?.readyCount === ready && o.status.desiredCount === ready && o.status.observedGeneration === o.metadata.generation;
}

export async function eventsFor(core: CoreV1Api, uid: string): Promise<CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.uid=${uid}` });
  return list.items;
}

/** The ids of the patches a workflow history recorded (its patch markers), in order. */
export function patchesIn(history: proto.temporal.api.history.v1.IHistory): string[] {
  return (history.events ?? []).flatMap((e) => {
    const p = e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0];
    return p ? [(defaultPayloadConverter.fromPayload(p) as { id: string }).id] : [];
  });
}
