// Pure helpers that turn a Kubernetes Node into what the workflows need.
import type { V1Node } from '@kubernetes/client-node';
import { ZONE_LABEL } from '../../common/names.js';

export interface ObservedNode {
  name: string;
  uid: string;
  labels: Record<string, string>;
  instanceId?: string;
  zone?: string;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** `aws:///us-east-1a/i-0abc…` → `i-0abc…`; anything else has no instance. */
export function instanceIdFromProviderId(providerID: string | undefined): string | undefined {
  if (!providerID?.startsWith('aws://')) return undefined;
  const last = providerID.split('/').pop();
  return last && INSTANCE_ID.test(last) ? last : undefined;
}

export function observeNode(node: V1Node): ObservedNode {
  const labels = node.metadata?.labels ?? {};
  return {
    name: node.metadata?.name ?? '',
    uid: node.metadata?.uid ?? '',
    labels,
    instanceId: instanceIdFromProviderId(node.spec?.providerID),
    zone: labels[ZONE_LABEL],
  };
}

/** nodeSelector is a set of equality requirements, like a Service selector. */
export function selectorMatches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

export function labelSelectorString(selector: Record<string, string>): string {
  return Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
