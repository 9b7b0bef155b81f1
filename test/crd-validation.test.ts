// The NodeENI CRD on a real kube-apiserver: the schema, CEL rules, defaults,
// printer columns and the status subresource behave as the CRD file promises,
// and every example in deploy/examples is accepted.
import { readFileSync, readdirSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  ApiException,
  ApiextensionsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, NODEENI_KIND, NODEENI_PLURAL } from '../common/names.js';
import type { NodeENIObject, NodeENISpec, NodeENIStatus } from '../common/types.js';
import { PROJECT_ROOT } from '../sandbox/backends/tools.js';
import { getBackends, kubeConfigFor } from './support/backends.js';

const EXAMPLES_DIR = path.join(PROJECT_ROOT, 'deploy', 'examples');
const CRD_NAME = `${NODEENI_PLURAL}.${API_GROUP}`;
const RUN = randomBytes(3).toString('hex');
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A spec that passes every rule; each invalid case breaks exactly one thing. */
const VALID = {
  nodeSelector: { ng: 'multi-eni' },
  subnetNames: ['multus-a'],
  securityGroupNames: ['multus-sg'],
} satisfies NodeENISpec;

type SpecBody = Record<string, unknown>;
const withSpec = (change: SpecBody): SpecBody => ({ ...VALID, ...change });
const without = (field: keyof NodeENISpec, change: SpecBody = {}): SpecBody => {
  const spec: SpecBody = { ...VALID, ...change };
  delete spec[field];
  return spec;
};
const hex = (n: number) => 'a'.repeat(n);

/** [case, spec, fragment the API server's rejection must contain] */
const INVALID: Array<[string, SpecBody, string]> = [
  ['nodeSelector missing', without('nodeSelector'), 'spec.nodeSelector: Required value'],
  ['empty nodeSelector selects every node', withSpec({ nodeSelector: {} }), 'spec.nodeSelector in body should have at least 1 properties'],
  ['label key with a space', withSpec({ nodeSelector: { 'bad key': 'x' } }), 'nodeSelector keys must be label keys'],
  ['label key name longer than 63', withSpec({ nodeSelector: { [`example.com/${'k'.repeat(64)}`]: 'x' } }), 'nodeSelector keys must be label keys'],
  ['label key prefix not a DNS subdomain', withSpec({ nodeSelector: { 'Example.COM/zone': 'x' } }), 'nodeSelector keys must be label keys'],
  ['label value with a space', withSpec({ nodeSelector: { ng: 'multi eni' } }), 'spec.nodeSelector.ng in body should match'],
  ['label value longer than 63', withSpec({ nodeSelector: { ng: 'v'.repeat(64) } }), 'spec.nodeSelector.ng: Too long'],
  ['no subnet source', without('subnetNames'), 'at least one of subnetID, subnetIDs, subnetName or subnetNames is required'],
  ['no security-group source', without('securityGroupNames'), 'at least one of securityGroupIDs or securityGroupNames is required'],
  ['subnetID not an ID', withSpec({ subnetID: 'subnet-XYZ' }), 'spec.subnetID in body should match'],
  ['subnetIDs item with 9 hex digits', withSpec({ subnetIDs: [`subnet-${hex(9)}`] }), 'spec.subnetIDs[0] in body should match'],
  ['subnetIDs duplicate', withSpec({ subnetIDs: [`subnet-${hex(8)}`, `subnet-${hex(8)}`] }), 'spec.subnetIDs[1]: Duplicate value'],
  ['subnetIDs empty list', withSpec({ subnetIDs: [] }), 'spec.subnetIDs in body should have at least 1 items'],
  ['more than 8 subnetIDs', withSpec({ subnetIDs: Array.from({ length: 9 }, (_, i) => `subnet-0000000${i}`) }), 'must have at most 8 items'],
  ['subnetID repeated in subnetIDs', withSpec({ subnetID: `subnet-${hex(17)}`, subnetIDs: [`subnet-${hex(17)}`] }), 'subnetID is also listed in subnetIDs'],
  ['subnetName repeated in subnetNames', withSpec({ subnetName: 'multus-a', subnetNames: ['multus-a', 'multus-b'] }), 'subnetName is also listed in subnetNames'],
  ['empty subnetName', withSpec({ subnetName: '' }), 'spec.subnetName in body should be at least 1 chars long'],
  ['subnet name longer than 255', withSpec({ subnetNames: ['n'.repeat(256)] }), 'spec.subnetNames[0]: Too long'],
  ['securityGroupIDs item not an ID', withSpec({ securityGroupIDs: ['sg-123'] }), 'spec.securityGroupIDs[0] in body should match'],
  ['securityGroupIDs duplicate', withSpec({ securityGroupIDs: [`sg-${hex(8)}`, `sg-${hex(8)}`] }), 'spec.securityGroupIDs[1]: Duplicate value'],
  ['more than 16 security groups in total', withSpec({
    securityGroupIDs: Array.from({ length: 10 }, (_, i) => `sg-0000000${i.toString(16)}`),
    securityGroupNames: Array.from({ length: 7 }, (_, i) => `sg-name-${i}`),
  }), 'at most 16 security groups'],
  ['empty security group name', withSpec({ securityGroupNames: [''] }), 'spec.securityGroupNames[0] in body should be at least 1 chars long'],
  ['deviceIndex 0 is the primary interface', withSpec({ deviceIndex: 0 }), 'spec.deviceIndex in body should be greater than or equal to 1'],
  ['deviceIndex above 15', withSpec({ deviceIndex: 16 }), 'spec.deviceIndex in body should be less than or equal to 15'],
  ['mtu below 576', withSpec({ mtu: 575 }), 'spec.mtu in body should be greater than or equal to 576'],
  ['mtu above 9216', withSpec({ mtu: 9217 }), 'spec.mtu in body should be less than or equal to 9216'],
  ['mtu as a string', withSpec({ mtu: '9001' }), 'spec.mtu in body must be of type integer'],
  ['deleteOnTermination as a string', withSpec({ deleteOnTermination: 'yes' }), 'spec.deleteOnTermination in body must be of type boolean'],
  ['description longer than 255', withSpec({ description: 'd'.repeat(256) }), 'spec.description: Too long'],
  ['unknown dpdkDriver', withSpec({ enableDPDK: true, dpdkResourceName: 'intel.com/dpdk', dpdkDriver: 'e1000' }), 'spec.dpdkDriver: Unsupported value: "e1000"'],
  ['dpdkDriver with enableDPDK false', withSpec({ enableDPDK: false, dpdkDriver: 'vfio-pci', dpdkResourceName: 'intel.com/k' }), 'dpdkDriver is only allowed when enableDPDK is true'],
  ['dpdkDriver with enableDPDK left to its default', withSpec({ dpdkDriver: 'vfio-pci' }), 'dpdkDriver is only allowed when enableDPDK is true'],
  ['enableDPDK without dpdkResourceName', withSpec({ enableDPDK: true }), 'enableDPDK requires dpdkResourceName'],
  ['dpdkPCIAddress without SR-IOV or DPDK', withSpec({ dpdkPCIAddress: '0000:00:07.0' }), 'dpdkPCIAddress is only used together with dpdkResourceName'],
  ['dpdkPCIAddress without a domain', withSpec({ dpdkResourceName: 'intel.com/k', dpdkPCIAddress: '00:07.0' }), 'spec.dpdkPCIAddress in body should match'],
  ['dpdkPCIAddress function 8', withSpec({ dpdkResourceName: 'intel.com/k', dpdkPCIAddress: '0000:00:07.8' }), 'spec.dpdkPCIAddress in body should match'],
  ['dpdkResourceName with a hyphen in the name', withSpec({ dpdkResourceName: 'intel.com/sriov-kernel' }), 'spec.dpdkResourceName in body should match'],
  ['dpdkResourceName with an upper-case prefix', withSpec({ dpdkResourceName: 'Intel.com/sriov' }), 'spec.dpdkResourceName in body should match'],
  ['misspelt field from the original README', withSpec({ dpdkEnabled: true }), 'unknown field "spec.dpdkEnabled"'],
];

/** Boundary values that must all be accepted. */
const VALID_EDGES: Array<[string, SpecBody]> = [
  ['long IDs, prefixed label key, empty label value', {
    nodeSelector: { 'node.kubernetes.io/instance-type': 'c6in.8xlarge', 'example.com/empty': '' },
    subnetID: `subnet-${hex(17)}`,
    subnetIDs: [`subnet-${hex(8)}`],
    securityGroupIDs: [`sg-${hex(17)}`],
  }],
  ['upper bounds', withSpec({ deviceIndex: 15, mtu: 9216, description: 'd'.repeat(255) })],
  ['lower bounds', withSpec({ deviceIndex: 1, mtu: 576 })],
  ['SR-IOV kernel mode with an explicit PCI address', withSpec({ dpdkResourceName: 'sriov_kernel', dpdkPCIAddress: '0000:00:07.0' })],
  ['DPDK with each driver', withSpec({ enableDPDK: true, dpdkDriver: 'uio_pci_generic', dpdkResourceName: 'intel.com/sriov_dpdk_1', dpdkPCIAddress: '0000:a0:1F.7' })],
  ['16 security groups in total', withSpec({
    securityGroupIDs: Array.from({ length: 8 }, (_, i) => `sg-0000000${i}`),
    securityGroupNames: Array.from({ length: 8 }, (_, i) => `sg-name-${i}`),
  })],
];

let kc: KubeConfig;
let custom: CustomObjectsApi;
const created = new Set<string>();

const ref = (name: string) => ({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name });
const manifest = (name: string, spec: SpecBody, extra: Record<string, unknown> = {}) => ({
  apiVersion: `${API_GROUP}/${API_VERSION}`,
  kind: NODEENI_KIND,
  metadata: { name },
  spec,
  ...extra,
});

async function create(body: Record<string, unknown>, dryRun = false): Promise<NodeENIObject> {
  const obj = (await custom.createClusterCustomObject({
    group: API_GROUP,
    version: API_VERSION,
    plural: NODEENI_PLURAL,
    body,
    fieldValidation: 'Strict',
    dryRun: dryRun ? 'All' : undefined,
  })) as NodeENIObject;
  if (!dryRun) created.add(obj.metadata.name);
  return obj;
}

async function remove(name: string): Promise<void> {
  await custom.deleteClusterCustomObject(ref(name));
  created.delete(name);
}

const get = async (name: string) => (await custom.getClusterCustomObject(ref(name))) as NodeENIObject;

/** The API server's rejection message, or a failure if the request succeeded. */
async function rejection(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = typeof err.body === 'string' ? (JSON.parse(err.body) as { message?: string }) : (err.body as { message?: string });
    return `${err.code} ${body?.message ?? ''}`;
  }
  throw new Error('the API server accepted a request it should have rejected');
}

/** Server-side printing, as `kubectl get` sees it. */
async function table(name: string): Promise<{ columns: Array<{ name: string; priority: number }>; cells: unknown[] }> {
  const url = new URL(`${kc.getCurrentCluster()!.server}/apis/${API_GROUP}/${API_VERSION}/${NODEENI_PLURAL}/${name}`);
  const opts: https.RequestOptions = {
    method: 'GET',
    headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
  };
  await kc.applyToHTTPSOptions(opts);
  const raw = await new Promise<string>((resolve, reject) => {
    const req = https.request(url, opts, (res) => {
      let data = '';
      res.on('data', (c: Buffer) => (data += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end();
  });
  const t = JSON.parse(raw) as { columnDefinitions: Array<{ name: string; priority: number }>; rows: Array<{ cells: unknown[] }> };
  return { columns: t.columnDefinitions, cells: t.rows[0]!.cells };
}

beforeAll(async () => {
  kc = kubeConfigFor(getBackends());
  custom = kc.makeApiClient(CustomObjectsApi);
});

afterAll(async () => {
  for (const name of created) await custom.deleteClusterCustomObject(ref(name)).catch(() => undefined);
});

describe('NodeENI CRD definition', () => {
  it('is served as declared, with printer columns that point at scalars', async () => {
    const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: CRD_NAME });
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.names).toMatchObject({ kind: 'NodeENI', listKind: 'NodeENIList', plural: 'nodeenis', singular: 'nodeeni', shortNames: ['neni'] });
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
    const version = crd.spec.versions[0]!;
    expect(version.subresources?.status).toEqual({});
    expect(version.additionalPrinterColumns?.map((c) => [c.name, c.type, c.jsonPath, c.priority ?? 0])).toEqual([
      ['Ready', 'string', '.status.conditions[?(@.type=="Ready")].status', 0],
      ['Attached', 'integer', '.status.readyCount', 0],
      ['Desired', 'integer', '.status.desiredCount', 0],
      ['Reason', 'string', '.status.conditions[?(@.type=="Ready")].reason', 1],
      ['Age', 'date', '.metadata.creationTimestamp', 0],
    ]);
  });
});

describe('invalid specs are rejected', () => {
  it('has at least 20 distinct cases', () => {
    expect(INVALID.length).toBeGreaterThanOrEqual(20);
    expect(new Set(INVALID.map(([c]) => c)).size).toBe(INVALID.length);
  });

  it.each(INVALID)('%s', async (what, spec, fragment) => {
    const message = await rejection(create(manifest(`invalid-${RUN}`, spec), true));
    // 422: schema or CEL rejection; 400: strict decoding of an unknown field.
    expect(message, what).toMatch(/^(422|400) /);
    expect(message).toContain(fragment);
  });

  it('rejects changing deviceIndex after creation', async () => {
    const name = `immutable-index-${RUN}`;
    await create(manifest(name, withSpec({ deviceIndex: 2 })));
    const message = await rejection(custom.patchClusterCustomObject({ ...ref(name), body: { spec: { deviceIndex: 3 } } }, mergePatch));
    expect(message).toContain('deviceIndex is immutable');
    // Other fields stay mutable.
    const patched = (await custom.patchClusterCustomObject({ ...ref(name), body: { spec: { mtu: 1500, description: 'changed' } } }, mergePatch)) as NodeENIObject;
    expect(patched.spec).toMatchObject({ deviceIndex: 2, mtu: 1500, description: 'changed' });
    await remove(name);
  });
});

describe('valid specs are accepted', () => {
  // deploy/examples also holds a plain Pod (the resctrl demo); the NodeENI examples are these.
  const files = readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml') && (parse(readFileSync(path.join(EXAMPLES_DIR, f), 'utf8')) as { kind?: string }).kind === 'NodeENI')
    .sort();

  it('ships the four NodeENI examples', () => {
    expect(files).toEqual(['01-plain-eni.yaml', '02-multi-subnet-by-name.yaml', '03-sriov-kernel.yaml', '04-dpdk-sriov.yaml']);
  });

  it.each(files)('example %s can be created and deleted', async (file) => {
    const body = parse(readFileSync(path.join(EXAMPLES_DIR, file), 'utf8')) as NodeENIObject;
    const name = `${body.metadata.name}-${RUN}`;
    const obj = await create({ ...body, metadata: { ...body.metadata, name } });
    expect(obj.spec).toMatchObject(body.spec as unknown as Record<string, unknown>);
    await remove(name);
    expect(await rejection(get(name))).toMatch(/^404 /);
  });

  it.each(VALID_EDGES)('%s', async (_what, spec) => {
    await create(manifest(`edge-${RUN}`, spec), true);
  });

  it('applies the defaults and leaves mtu unset', async () => {
    const obj = await create(manifest(`defaults-${RUN}`, VALID), true);
    expect(obj.spec).toEqual({ ...VALID, deviceIndex: 1, deleteOnTermination: true, enableDPDK: false });
  });

  it('keeps an explicit deleteOnTermination false', async () => {
    const obj = await create(manifest(`keep-false-${RUN}`, withSpec({ deleteOnTermination: false })), true);
    expect(obj.spec.deleteOnTermination).toBe(false);
  });
});

describe('status subresource', () => {
  const status: NodeENIStatus = {
    observedGeneration: 1,
    desiredCount: 2,
    readyCount: 2,
    attachments: [
      { nodeID: 'node-a', instanceID: 'i-0123456789abcdef0', subnetID: `subnet-${hex(8)}`, eniID: 'eni-0123456789abcdef0', deviceIndex: 2, phase: 'Ready' },
      { nodeID: 'node-b', instanceID: 'i-0123456789abcdef1', subnetID: `subnet-${hex(8)}`, phase: 'Ready', mtu: 9001 },
    ],
    conditions: [
      { type: 'Ready', status: 'True', reason: 'AllAttachmentsReady', message: '2/2 attachments ready', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 },
    ],
  };

  it('ignores status sent to the main resource and accepts it through /status', async () => {
    const name = `status-${RUN}`;
    const obj = await create(manifest(name, VALID, { status }));
    expect(obj.status).toBeUndefined();

    await custom.patchClusterCustomObject({ ...ref(name), body: { status } }, mergePatch);
    const afterMainPatch = await get(name);
    expect(afterMainPatch.status).toBeUndefined();
    expect(afterMainPatch.metadata.generation).toBe(1);

    const written = (await custom.patchClusterCustomObjectStatus({ ...ref(name), body: { status, spec: { mtu: 1500 } } }, mergePatch)) as NodeENIObject;
    expect(written.status).toEqual(status);
    expect(written.spec.mtu).toBeUndefined();
    expect(written.metadata.generation).toBe(1);

    const printed = await table(name);
    const column = (n: string) => printed.cells[printed.columns.findIndex((c) => c.name === n)];
    expect(printed.columns.map((c) => c.name)).toEqual(['Name', 'Ready', 'Attached', 'Desired', 'Reason', 'Age']);
    expect(printed.columns.find((c) => c.name === 'Reason')?.priority).toBe(1);
    expect([column('Ready'), column('Attached'), column('Desired'), column('Reason')]).toEqual(['True', 2, 2, 'AllAttachmentsReady']);
    await remove(name);
  });

  it('validates status writes against the status schema', async () => {
    const name = `bad-status-${RUN}`;
    await create(manifest(name, VALID));
    const badPhase = { attachments: [{ nodeID: 'n', instanceID: 'i-1', subnetID: 's', phase: 'attached' }] };
    expect(await rejection(custom.patchClusterCustomObjectStatus({ ...ref(name), body: { status: badPhase } }, mergePatch))).toContain(
      'status.attachments[0].phase: Unsupported value: "attached"',
    );
    const badReason = { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSubnetID.NotFound', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] };
    expect(await rejection(custom.patchClusterCustomObjectStatus({ ...ref(name), body: { status: badReason } }, mergePatch))).toContain(
      'status.conditions[0].reason: Invalid value',
    );
    const duplicateType = {
      conditions: [
        { type: 'Ready', status: 'True', reason: 'A', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Ready', status: 'False', reason: 'B', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
      ],
    };
    expect(await rejection(custom.patchClusterCustomObjectStatus({ ...ref(name), body: { status: duplicateType } }, mergePatch))).toContain(
      'status.conditions[1]: Duplicate value',
    );
    await remove(name);
  });
});
