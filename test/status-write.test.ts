// The entity's status write on a real kube-apiserver, as the control worker's ServiceAccount: with
// the digest of what the pass observed it takes one request (none when nothing changed), replaces
// the status whole, and never lands on a NodeENI re-created under the same name. The finalizer's
// removal likewise: one request where the pass saw it, and only from the object the pass saw.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { API_GROUP, API_VERSION, FINALIZER, NODEENI_PLURAL } from '../common/names.js';
import type { NodeENIObject, NodeENIStatus } from '../common/types.js';
import { createKubeActivities, statusDigest, type ObservedNodeENI } from '../activities/kube/kube-activities.js';
import { installDeployment, serviceAccountKubeConfig } from '../sandbox/kube-install.js';
import { getBackends, kubeConfigFor } from './support/backends.js';
import { TEST_INSTALL_OVERLAY } from './support/cluster.js';

const RUN = randomBytes(3).toString('hex');
const ref = (name: string) => ({ group: API_GROUP, version: API_VERSION, plural: NODEENI_PLURAL, name });
const SPEC = { nodeSelector: { 'status-write': RUN }, subnetNames: ['multus-a'], securityGroupNames: ['multus-sg'] };

let admin: CustomObjectsApi;
let kube: ReturnType<typeof createKubeActivities>;
/** Requests the control worker's client sent, by method. */
const sent: string[] = [];
const created: string[] = [];

const inActivity = <T>(fn: () => Promise<T>): Promise<T> => new MockActivityEnvironment().run(fn) as Promise<T>;
const observe = (name: string, uid: string) => inActivity(() => kube.observeNodeEni({ name, uid }));
const write = (name: string, uid: string, status: NodeENIStatus, observed?: ObservedNodeENI) =>
  inActivity(() => kube.writeStatus({ name, uid, status, observedDigest: observed?.statusDigest }));

async function createNodeEni(name: string, finalizers?: string[]): Promise<NodeENIObject> {
  created.push(name);
  return (await admin.createClusterCustomObject({ ...ref(name), body: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'NodeENI', metadata: { name, ...(finalizers ? { finalizers } : {}) }, spec: SPEC } })) as NodeENIObject;
}
const removeFinalizer = (name: string, uid: string, observed?: ObservedNodeENI) =>
  inActivity(() => kube.removeFinalizer({ name, uid, finalizerIndex: observed?.finalizerIndex }));
/** Lets a NodeENI kept by the test's own finalizer go. */
const release = (name: string) => admin.patchClusterCustomObject({ ...ref(name), body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
const read = async (name: string) => (await admin.getClusterCustomObject(ref(name))) as NodeENIObject;

const status = (message: string): NodeENIStatus => ({
  observedGeneration: 1,
  conditions: [{ type: 'Ready', status: 'False', reason: 'Provisioning', message, lastTransitionTime: '2026-12-02T00:00:00Z' }],
});

beforeAll(async () => {
  const adminKc = kubeConfigFor(getBackends());
  await installDeployment(adminKc, TEST_INSTALL_OVERLAY);
  admin = adminKc.makeApiClient(CustomObjectsApi);
  const controlKc: KubeConfig = await serviceAccountKubeConfig(adminKc, 'nodeeni-control-worker');
  // Every request of the control worker's client passes through its authentication: counted there, by method.
  const authenticate = controlKc.applySecurityAuthentication.bind(controlKc);
  controlKc.applySecurityAuthentication = async (context) => {
    sent.push(context.getHttpMethod());
    await authenticate(context);
  };
  kube = createKubeActivities({ kc: controlKc });
});

afterAll(async () => {
  for (const name of created) await admin.deleteClusterCustomObject(ref(name)).catch(() => undefined);
});

describe('writeStatus with the digest of what the pass observed', () => {
  it('writes a changed status in one request and nothing when it is the same', async () => {
    const name = `sw-${RUN}-a`;
    const obj = await createNodeEni(name);
    const uid = obj.metadata.uid!;
    const first = await observe(name, uid);
    expect(first.statusDigest).toBe(statusDigest({}));

    sent.length = 0;
    expect(await write(name, uid, status('one'), first)).toEqual({ changed: true, digest: statusDigest(status('one')) });
    expect(sent).toEqual(['PATCH']);
    expect((await read(name)).status).toEqual(status('one'));

    const second = await observe(name, uid);
    sent.length = 0;
    // Keys in another order are the same status.
    const reordered = JSON.parse(JSON.stringify({ conditions: status('one').conditions, observedGeneration: 1 })) as NodeENIStatus;
    expect(await write(name, uid, reordered, second)).toEqual({ changed: false, digest: second.statusDigest });
    expect(sent).toEqual([]);

    // A field no longer reported goes: the status is replaced whole.
    sent.length = 0;
    expect(await write(name, uid, { conditions: status('two').conditions }, second)).toMatchObject({ changed: true });
    expect(sent).toEqual(['PATCH']);
    expect((await read(name)).status).toEqual({ conditions: status('two').conditions });
  });

  it('does not write to a NodeENI re-created under the same name', async () => {
    const name = `sw-${RUN}-b`;
    const old = await createNodeEni(name);
    const seen = await observe(name, old.metadata.uid!);
    await admin.deleteClusterCustomObject(ref(name));
    await expect.poll(async () => admin.getClusterCustomObject(ref(name)).then(() => 'there', () => 'gone')).toBe('gone');
    const fresh = await createNodeEni(name);
    sent.length = 0;
    expect(await write(name, old.metadata.uid!, status('for the old one'), seen)).toEqual({ changed: false });
    // The refused patch, then the read that says why.
    expect(sent).toEqual(['PATCH', 'GET']);
    expect((await read(name)).status ?? {}).toEqual({});
    expect((await read(name)).metadata.uid).toBe(fresh.metadata.uid);
    // And when it is gone altogether.
    await admin.deleteClusterCustomObject(ref(name));
    await expect.poll(async () => admin.getClusterCustomObject(ref(name)).then(() => 'there', () => 'gone')).toBe('gone');
    expect(await write(name, fresh.metadata.uid!, status('gone'), seen)).toEqual({ changed: false });
  });

  it('a status the schema refuses is an error, not "unchanged"', async () => {
    const name = `sw-${RUN}-c`;
    const obj = await createNodeEni(name);
    const seen = await observe(name, obj.metadata.uid!);
    const bad = { conditions: [{ type: 'Ready', status: 'Maybe', reason: 'x', message: 'y', lastTransitionTime: 'not a time' }] } as unknown as NodeENIStatus;
    sent.length = 0;
    await expect(write(name, obj.metadata.uid!, bad, seen)).rejects.toThrow(/KubeHTTP422|status\.conditions\[0\]\.status: Unsupported value/);
    await expect(write(name, obj.metadata.uid!, bad, seen)).rejects.toThrow(/status\.conditions\[0\]\.status: Unsupported value/);
    // The refused patch, the read that finds the object is ours, and the write that says what is wrong.
    expect(sent.slice(0, 3)).toEqual(['PATCH', 'GET', 'PATCH']);
  });

  it('without a digest (a pass recorded before it existed) reads first, as before', async () => {
    const name = `sw-${RUN}-d`;
    const obj = await createNodeEni(name);
    sent.length = 0;
    expect(await write(name, obj.metadata.uid!, status('legacy'))).toMatchObject({ changed: true });
    expect(sent).toEqual(['GET', 'PATCH']);
    sent.length = 0;
    expect(await write(name, obj.metadata.uid!, status('legacy'))).toMatchObject({ changed: false });
    expect(sent).toEqual(['GET']);
  });
});

describe('removeFinalizer where the pass saw it', () => {
  const OTHER = 'example.com/keep';

  it('takes one request, and leaves the other finalizers', async () => {
    const name = `sw-${RUN}-e`;
    const obj = await createNodeEni(name, [OTHER, FINALIZER]);
    const seen = await observe(name, obj.metadata.uid!);
    expect(seen.finalizerIndex).toBe(1);
    sent.length = 0;
    expect(await removeFinalizer(name, obj.metadata.uid!, seen)).toEqual({ removed: true });
    expect(sent).toEqual(['PATCH']);
    expect((await read(name)).metadata.finalizers).toEqual([OTHER]);
    await release(name);
  });

  it('when the finalizers moved since, reads and removes ours only', async () => {
    const name = `sw-${RUN}-f`;
    const obj = await createNodeEni(name, [FINALIZER]);
    const seen = await observe(name, obj.metadata.uid!);
    expect(seen.finalizerIndex).toBe(0);
    // Someone else's finalizer lands in front of ours.
    await admin.patchClusterCustomObject({ ...ref(name), body: [{ op: 'add', path: '/metadata/finalizers/0', value: OTHER }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
    sent.length = 0;
    expect(await removeFinalizer(name, obj.metadata.uid!, seen)).toEqual({ removed: true });
    expect(sent).toEqual(['PATCH', 'GET', 'PATCH']);
    expect((await read(name)).metadata.finalizers).toEqual([OTHER]);
    await release(name);
  });

  it('never from a NodeENI re-created under the same name', async () => {
    const name = `sw-${RUN}-g`;
    const old = await createNodeEni(name, [FINALIZER]);
    const seen = await observe(name, old.metadata.uid!);
    await release(name);
    await admin.deleteClusterCustomObject(ref(name));
    await expect.poll(async () => admin.getClusterCustomObject(ref(name)).then(() => 'there', () => 'gone')).toBe('gone');
    await createNodeEni(name, [FINALIZER]);
    sent.length = 0;
    expect(await removeFinalizer(name, old.metadata.uid!, seen)).toEqual({ removed: false });
    expect(sent).toEqual(['PATCH', 'GET']);
    expect((await read(name)).metadata.finalizers).toEqual([FINALIZER]);
    await release(name);
  });
});
