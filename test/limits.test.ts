// Scale by design, proven with lowered limits: a NodeENI larger than the
// limits converges on a Temporal server that enforces them (pending children
// per workflow, blob size), its status stays bounded, and the payloads a
// 5,000-attachment NodeENI produces stay under Temporal's blob-size warning.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { startTemporal, type TemporalServer } from '../sandbox/backends/temporal.js';
import { entityWorkflowId } from '../common/names.js';
import { emptyEntityState, type ChildRecord, type ConfiguredAttachment, type EntityView } from '../common/workflow-api.js';
import type { ManagedEni, PassInstance } from '../activities/ec2/ec2-activities.js';
import { buildStatus } from '../workflows/status.js';
import type { Plan } from '../workflows/plan.js';
import { GZIP_ENCODING, LargePayloadCodec } from '../workers/payload-codec.js';
import { getBackends } from './support/backends.js';
import { createTestCluster, eventually, type TestCluster } from './support/cluster.js';
import { enisOf } from './support/inspect.js';

const NODES = 24;
const WINDOW = 3;
const STATUS_ROWS = 3;
/** Scaled down in proportion: Temporal's 512 KiB warning over 5,000 attachments is about 105 bytes each. */
const BLOB_WARN = 4096;
const BLOB_ERROR = 6144;

let temporalServer: TemporalServer;
let c: TestCluster;
beforeAll(async () => {
  temporalServer = await startTemporal({
    dynamicConfig: [
      // The server refuses a child start beyond this: the entity must window its children.
      `limit.numPendingChildExecutions.error=${WINDOW + 1}`,
      `limit.blobSize.warn=${BLOB_WARN}`,
      `limit.blobSize.error=${BLOB_ERROR}`,
    ],
  });
  c = await createTestCluster({
    backends: { ...getBackends(), temporalAddress: temporalServer.address, temporalNamespace: temporalServer.namespace },
    instances: NODES,
    entityOptions: { maxConcurrentChildren: WINDOW, maxStatusAttachments: STATUS_ROWS },
    // Compression from 2 KiB on, as from 64 KiB for a NodeENI a hundred times larger.
    controlDataConverter: { payloadCodecs: [new LargePayloadCodec(2048)] },
  });
}, 180_000);
afterAll(async () => {
  await c?.dispose();
  await temporalServer?.stop();
});

describe('a NodeENI larger than the lowered limits', () => {
  it(`converges with ${NODES} attachments, at most ${WINDOW} children at once, a bounded status and compressed payloads`, async () => {
    const obj = await c.createNodeEni('big', { subnetNames: ['multus-a', 'multus-b'], securityGroupNames: ['multus-sg'] });
    const handle = c.client.workflow.getHandle(entityWorkflowId(obj.metadata.name, obj.metadata.uid));
    let mostChildren = 0;
    const ready = await eventually('Ready with every attachment', async () => {
      const view = await handle.query<EntityView>('state').catch(() => undefined);
      if (view) mostChildren = Math.max(mostChildren, view.inFlight.length);
      const o = await c.getNodeEni('big');
      return o?.status?.readyCount === NODES && o.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True' && o;
    }, 240_000);
    expect(mostChildren).toBeLessThanOrEqual(WINDOW);
    expect(ready.status!.desiredCount).toBe(NODES);
    expect(ready.status!.attachments).toHaveLength(STATUS_ROWS);
    expect(ready.status!.attachmentsOmitted).toBe(NODES - STATUS_ROWS);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(NODES);

    // No workflow task of the entity failed (a refused child start or an oversized payload would), and the large ones went compressed.
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    expect(events.filter((e) => e.workflowTaskFailedEventAttributes).map((e) => e.workflowTaskFailedEventAttributes!.failure?.message)).toEqual([]);
    const encodings = new Set(events.flatMap((e) => payloadsOf(e)).map((p) => new TextDecoder().decode(p.metadata?.encoding ?? new Uint8Array())));
    expect(encodings).toContain(GZIP_ENCODING);
    expect(Math.max(...events.flatMap((e) => payloadsOf(e)).map((p) => p.data?.length ?? 0))).toBeLessThan(BLOB_WARN);

    await c.deleteNodeEni('big');
    await eventually('deleted', async () => (await c.getNodeEni('big')) === undefined, 240_000);
    expect(await enisOf(c.ec2, obj.metadata.uid)).toHaveLength(0);
  }, 600_000);
});

/** Every payload an event carries (inputs, results, signals), found by walking it. */
function payloadsOf(event: temporal.api.history.v1.IHistoryEvent): Payload[] {
  const out: Payload[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if (o.metadata && o.data instanceof Uint8Array) {
      out.push(o as Payload);
      return;
    }
    Object.values(o).forEach(walk);
  };
  walk(event);
  return out;
}

describe('payloads and status of a 5,000-attachment NodeENI', () => {
  const N = 5000;
  const node = (i: number) => `ip-10-${Math.floor(i / 250)}-${i % 250}-7.eu-west-1.compute.internal`;
  const eni = (i: number) => `eni-${(0x0a000000 + i).toString(16).padStart(17, '0')}`;
  const instance = (i: number) => `i-${(0x0b000000 + i).toString(16).padStart(17, '0')}`;
  const mac = (i: number) => `0e:${[i >> 16, (i >> 8) & 255, i & 255, 17, 34].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  const uid = '6f1c2a3e-5b7d-4c9e-8f0a-1b2c3d4e5f60';
  const subnet = 'subnet-0123456789abcdef0';
  const keyOf = (i: number) => `${uid}/${node(i)}/${instance(i)}/${subnet}`;

  const codec = new LargePayloadCodec();
  const encodedSize = async (value: unknown) => {
    const [p] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
    return p!.data!.length;
  };
  const WARN = 512 * 1024;

  it('the entity state carried across continue-as-new stays under the blob-size warning', async () => {
    const state = emptyEntityState();
    for (let i = 0; i < N; i++) {
      const done: ConfiguredAttachment = { eniId: eni(i), attachmentId: `eni-attach-${(0x0c000000 + i).toString(16).padStart(17, '0')}`, deviceIndex: 1, macAddress: mac(i), interfaceName: 'ens6', pciAddress: '0000:00:06.0', mtu: 9001, generation: 3 };
      state.configured[keyOf(i)] = done;
    }
    for (let i = 0; i < 300; i++) {
      const child: ChildRecord = { op: 'provision', workflowId: `nodeeni/big/${uid}/provision/${node(i)}/${subnet}/${i}`, key: keyOf(i), node: node(i), generation: 3, startedAt: 1_790_000_000_000 + i };
      state.children![child.workflowId] = child;
    }
    // What the run read of EC2 goes along too (WORLD_CARRY_PATCH): every instance, each in its own subnet's VPC.
    state.world = {
      fullAt: 1_790_000_000_000, outsideChanged: false, maxInterfaces: { 'c5n.large': 3, 'c5n.9xlarge': 8 },
      instances: Array.from({ length: N }, (_, i) => ({ instanceId: instance(i), az: `eu-west-1${'abc'[i % 3]}`, vpcId: 'vpc-0123456789abcdef0', state: 'running', instanceType: 'c5n.large', usedDeviceIndices: [0, 1] })),
      resolved: { generation: 3, byVpc: [{ vpcId: 'vpc-0123456789abcdef0', securityGroupIds: ['sg-0123456789abcdef0'], problems: [], subnets: [{ id: subnet, az: 'eu-west-1a', cidr: '10.1.0.0/16' }] }] },
    };
    const size = await encodedSize({ name: 'big', uid, options: {}, state });
    console.log(`entity state of ${N} attachments: ${JSON.stringify(state).length} bytes of JSON, ${size} bytes encoded`);
    expect(size).toBeLessThan(WARN);
  });

  it('what a pass reads (ENIs, instances) stays under the blob-size warning', async () => {
    const managed: ManagedEni[] = Array.from({ length: N }, (_, i) => ({
      eniId: eni(i), status: 'in-use', subnetId: subnet, macAddress: mac(i), attachmentKey: keyOf(i), nodeName: node(i), instanceId: instance(i), leaked: false,
      securityGroupIds: ['sg-0123456789abcdef0'],
      attachment: { attachmentId: `eni-attach-${(0x0c000000 + i).toString(16).padStart(17, '0')}`, instanceId: instance(i), deviceIndex: 1, status: 'attached', deleteOnTermination: true },
    }));
    const instances: PassInstance[] = Array.from({ length: N }, (_, i) => ({ instanceId: instance(i), az: 'eu-west-1a', vpcId: 'vpc-0123456789abcdef0', state: 'running', instanceType: 'c5n.large', usedDeviceIndices: [0, 1] }));
    for (const [what, value] of [['listManagedEnis', managed], ['describeInstancesForPass', { instances, maxInterfaces: { 'c5n.large': 3 } }]] as const) {
      const size = await encodedSize(value);
      console.log(`${what} of ${N}: ${JSON.stringify(value).length} bytes of JSON, ${size} bytes encoded`);
      expect(size, what).toBeLessThan(WARN);
    }
  });

  it('the NodeENI status lists at most 500 rows and stays far below the API server object limit', () => {
    const desired = Array.from({ length: N }, (_, i) => ({
      key: { nodeName: node(i), instanceId: instance(i), subnetId: subnet }, keyString: keyOf(i),
      subnet: { id: subnet, az: 'eu-west-1a', cidr: '10.1.0.0/16' }, securityGroupIds: ['sg-0123456789abcdef0'], preferredDeviceIndex: 1,
    }));
    const plan: Plan = { desired, problems: [], skipped: [], eniByKey: new Map(), provision: [], removing: [], teardown: [], retained: [] };
    const status = buildStatus({ plan, state: emptyEntityState(), spec: { nodeSelector: {} } as never, generation: 1, deleting: false, inFlight: [], previous: [], now: '2026-11-30T00:00:00Z' });
    const bytes = JSON.stringify(status).length;
    console.log(`status of ${N} attachments: ${status.attachments!.length} rows, ${status.attachmentsOmitted} omitted, ${bytes} bytes`);
    expect(status.attachments).toHaveLength(500);
    expect(status.attachmentsOmitted).toBe(N - 500);
    expect(status.desiredCount).toBe(N);
    expect(bytes).toBeLessThan(512 * 1024);
  });
});
