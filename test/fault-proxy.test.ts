// The fault-injecting EC2 proxy against a real moto server: fault rules,
// real-EC2 behaviours moto lacks, ClientToken idempotency, transitional
// attachment states, attachment DeleteOnTermination, EC2's request-rate
// throttling (token buckets per account and action), and the seeded world.
import {
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfaceAttributeCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  DetachNetworkInterfaceCommand,
  ModifyNetworkInterfaceAttributeCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMoto, type MotoServer } from '../sandbox/backends/moto.js';
import { makeEc2Client, randomAccountId } from '../sandbox/ec2/client.js';
import { FaultProxyClient } from '../sandbox/ec2/fault-client.js';
import { startFaultProxy, type FaultProxy } from '../sandbox/ec2/fault-proxy.js';
import { seedWorld, type World } from '../sandbox/ec2/seed.js';
import { AWS_THROTTLE, classify, lowerBoundSeconds, lowerBoundSecondsAll, OFF, ThrottleBuckets, type ThrottleSettings } from '../sandbox/ec2/throttle.js';

let moto: MotoServer;
let proxy: FaultProxy;
let faults: FaultProxyClient;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startFaultProxy({ target: moto.endpoint });
  faults = new FaultProxyClient(proxy.endpoint);
}, 90_000);

afterAll(async () => {
  await proxy?.stop();
  await moto?.stop();
});

beforeEach(async () => {
  await faults.clear();
  await faults.setFidelity({ enabled: true, attachDelayMs: 0, detachDelayMs: 0 });
});

/** A client through the proxy, in a fresh moto account unless one is given. */
function client(opts: { account?: string; maxAttempts?: number } = {}): { ec2: EC2Client; account: string } {
  const account = opts.account ?? randomAccountId();
  return { ec2: makeEc2Client({ endpoint: proxy.endpoint, account, maxAttempts: opts.maxAttempts }), account };
}

async function expectEc2Error(p: Promise<unknown>, code: string, message?: RegExp, httpStatus = 400): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } },
  );
  expect(err, `expected ${code}`).toBeDefined();
  expect(err?.name).toBe(code);
  expect(err?.$metadata?.httpStatusCode).toBe(httpStatus);
  if (message) expect(err?.message).toMatch(message);
}

function subnet(world: World, name: string) {
  const s = world.subnets.find((x) => x.name === name);
  if (!s) throw new Error(`no subnet ${name}`);
  return s;
}

async function createEni(ec2: EC2Client, subnetId: string, extra: { ClientToken?: string; Description?: string } = {}): Promise<string> {
  const out = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId, ...extra }));
  const id = out.NetworkInterface?.NetworkInterfaceId;
  if (!id) throw new Error('no ENI id');
  return id;
}

async function describeEni(ec2: EC2Client, eniId: string): Promise<NetworkInterface> {
  const out = await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eniId] }));
  const eni = out.NetworkInterfaces?.[0];
  if (!eni) throw new Error(`ENI ${eniId} not described`);
  return eni;
}

async function attach(ec2: EC2Client, eniId: string, instanceId: string, deviceIndex: number): Promise<string> {
  const out = await ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eniId, InstanceId: instanceId, DeviceIndex: deviceIndex }));
  if (!out.AttachmentId) throw new Error('no attachment id');
  return out.AttachmentId;
}

describe('fault rules', () => {
  it('throttles `count` times and the SDK retry recovers', async () => {
    const { ec2, account } = client({ maxAttempts: 3 });
    await faults.addRules({ action: 'DescribeVpcs', code: 'RequestLimitExceeded', count: 2, account });
    const out = await ec2.send(new DescribeVpcsCommand({}));
    expect(out.$metadata.attempts).toBe(3);
    expect(out.Vpcs?.length).toBeGreaterThan(0);
    expect((await faults.counts(account)).DescribeVpcs).toBe(3);
    expect((await faults.rules())[0]).toMatchObject({ action: 'DescribeVpcs', applied: 2, count: 2 });
  }, 30_000);

  it('answers throttling with HTTP 503 and the EC2 error body', async () => {
    const { ec2, account } = client({ maxAttempts: 1 });
    await faults.addRules({ action: 'DescribeVpcs', code: 'RequestLimitExceeded', account });
    await expectEc2Error(ec2.send(new DescribeVpcsCommand({})), 'RequestLimitExceeded', /Request limit exceeded/, 503);
    await expectEc2Error(ec2.send(new DescribeVpcsCommand({})), 'RequestLimitExceeded', undefined, 503);
  });

  it('applies a rule only to its account', async () => {
    const a = client();
    const b = client();
    await faults.addRules({ action: 'DescribeVpcs', code: 'UnauthorizedOperation', message: 'You are not authorized.', account: a.account });
    await expectEc2Error(a.ec2.send(new DescribeVpcsCommand({})), 'UnauthorizedOperation', /not authorized/, 403);
    const out = await b.ec2.send(new DescribeVpcsCommand({}));
    expect(out.Vpcs?.length).toBeGreaterThan(0);
    expect(await faults.counts(a.account)).toEqual({ DescribeVpcs: 1 });
    expect(await faults.counts(b.account)).toEqual({ DescribeVpcs: 1 });
  });

  it('matches form parameters', async () => {
    const { ec2, account } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const target = await createEni(ec2, subnet(world, 'multus-a').id);
    const other = await createEni(ec2, subnet(world, 'multus-a').id);
    await faults.addRules({ action: 'DeleteNetworkInterface', code: 'IncorrectState', account, match: { NetworkInterfaceId: target } });
    await expectEc2Error(ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: target })), 'IncorrectState');
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: other }));
    const left = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: [subnet(world, 'multus-a').id] }] }));
    expect(left.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([target]);
  }, 30_000);

  it('delays a response by latencyMs, then forwards it', async () => {
    const { ec2, account } = client();
    await faults.addRules({ action: 'DescribeVpcs', latencyMs: 600, count: 1, account });
    const started = Date.now();
    const out = await ec2.send(new DescribeVpcsCommand({}));
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);
    expect(out.Vpcs?.length).toBeGreaterThan(0);
    expect((await faults.rules())[0]?.applied).toBe(1);
  });

  it('drops the connection; a retrying client recovers', async () => {
    const once = client({ maxAttempts: 1 });
    await faults.addRules({ action: 'DescribeVpcs', dropConnection: true, count: 1, account: once.account });
    await expect(once.ec2.send(new DescribeVpcsCommand({}))).rejects.toThrow();

    const retrying = client({ maxAttempts: 2 });
    await faults.addRules({ action: 'DescribeVpcs', dropConnection: true, count: 1, account: retrying.account });
    const out = await retrying.ec2.send(new DescribeVpcsCommand({}));
    expect(out.$metadata.attempts).toBe(2);
  }, 30_000);

  it('afterEffect: the request takes effect, its answer is lost (dropped or replaced by an error)', async () => {
    const { ec2, account } = client({ maxAttempts: 1 });
    const world = await seedWorld(ec2, { instances: 1 });
    const eniId = await createEni(ec2, subnet(world, 'multus-a').id);
    await faults.addRules({ action: 'AttachNetworkInterface', afterEffect: true, dropConnection: true, count: 1, account });
    await expect(attach(ec2, eniId, world.instances[0]!.id, 1)).rejects.toThrow();
    expect((await describeEni(ec2, eniId)).Attachment).toMatchObject({ InstanceId: world.instances[0]!.id, DeviceIndex: 1 });

    const other = await createEni(ec2, subnet(world, 'multus-a').id);
    await faults.addRules({ action: 'DeleteNetworkInterface', afterEffect: true, code: 'InternalError', count: 1, account });
    await expectEc2Error(ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: other })), 'InternalError', undefined, 500);
    const left = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'network-interface-id', Values: [other] }] }));
    expect(left.NetworkInterfaces).toEqual([]);
    expect((await faults.rules()).map((r) => r.applied)).toEqual([1, 1]);
  }, 30_000);

  it('rejects malformed rules and forwards non-EC2 paths unchanged', async () => {
    await expect(faults.addRules({ action: 'DescribeVpcs' })).rejects.toThrow(/HTTP 400/);
    await expect(faults.addRules({ action: 'DescribeVpcs', afterEffect: true, latencyMs: 10 })).rejects.toThrow(/afterEffect replaces the answer/);
    const res = await fetch(`${proxy.endpoint}/moto-api/`);
    expect(res.status).toBe(200);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends DescribeVpcs `n` times one after another; per request, the EC2 code it failed with or undefined. */
async function describeVpcsOutcomes(ec2: EC2Client, n: number): Promise<(string | undefined)[]> {
  const outcomes: (string | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    outcomes.push(await ec2.send(new DescribeVpcsCommand({})).then(() => undefined, (e: unknown) => (e as { name?: string }).name ?? 'unknown'));
  }
  return outcomes;
}

describe('rate-based and time-window rules', () => {
  const N = 200;
  const P = 0.25;

  async function seededRun(seed: number): Promise<(string | undefined)[]> {
    await faults.clear();
    expect(await faults.setSeed(seed)).toBe(seed);
    const { ec2, account } = client();
    await faults.addRules({ action: 'DescribeVpcs', code: 'RequestLimitExceeded', probability: P, account });
    return describeVpcsOutcomes(ec2, N);
  }

  it('faults a matched request with `probability`, reproducibly for a seed', async () => {
    const first = await seededRun(20_240_601);
    const faulted = first.filter((o) => o !== undefined);
    expect(new Set(faulted)).toEqual(new Set(['RequestLimitExceeded']));
    // p·N = 50, σ ≈ 6.1: a seeded run lands well inside ±2σ.
    expect(faulted.length).toBeGreaterThanOrEqual(38);
    expect(faulted.length).toBeLessThanOrEqual(62);
    const s = await faults.state();
    expect(s.rules[0]).toMatchObject({ probability: P, matched: N, applied: faulted.length, status: 'active' });
    expect(s.injected).toEqual({ total: faulted.length, byCode: { RequestLimitExceeded: faulted.length }, dropped: 0, delayed: 0 });
    expect(s.seed).toBe(20_240_601);

    // Same seed, same requests: the same requests fail.
    expect(await seededRun(20_240_601)).toEqual(first);
    // Another seed: another pattern.
    expect(await seededRun(7)).not.toEqual(first);
  }, 60_000);

  it('takes the seed as a start option too', async () => {
    const seeded = await startFaultProxy({ target: moto.endpoint, seed: 4242 });
    try {
      const other = new FaultProxyClient(seeded.endpoint);
      expect(await other.seed()).toBe(4242);
      const account = randomAccountId();
      await other.addRules({ action: 'DescribeVpcs', code: 'InternalError', probability: 0.5, account });
      const viaStart = await describeVpcsOutcomes(makeEc2Client({ endpoint: seeded.endpoint, account }), 40);

      await faults.setSeed(4242);
      const { ec2, account: mine } = client();
      await faults.addRules({ action: 'DescribeVpcs', code: 'InternalError', probability: 0.5, account: mine });
      expect(await describeVpcsOutcomes(ec2, 40)).toEqual(viaStart);
    } finally {
      await seeded.stop();
    }
    await expect(startFaultProxy({ target: moto.endpoint, seed: -1 })).rejects.toThrow(/seed/);
  }, 30_000);

  it('does not consume `count` with requests it lets through', async () => {
    const { ec2, account } = client();
    await faults.setSeed(99);
    await faults.addRules({ action: 'DescribeVpcs', code: 'UnauthorizedOperation', probability: 0.5, count: 5, account });
    const outcomes = await describeVpcsOutcomes(ec2, 60);
    expect(outcomes.filter((o) => o === 'UnauthorizedOperation')).toHaveLength(5);
    const [rule] = await faults.rules();
    expect(rule).toMatchObject({ applied: 5, status: 'exhausted' });
    // It stopped selecting once used up, and some selected requests went through before that.
    const lastFault = outcomes.lastIndexOf('UnauthorizedOperation');
    expect(rule!.matched).toBe(lastFault + 1);
    expect(rule!.matched).toBeGreaterThan(5);
  }, 30_000);

  it('hands a request a probabilistic rule lets through to the next rule', async () => {
    const { ec2, account } = client();
    await faults.setSeed(1);
    await faults.addRules([
      { action: 'DescribeVpcs', code: 'UnauthorizedOperation', probability: 0.3, account },
      { action: 'DescribeVpcs', code: 'InternalError', account },
    ]);
    const outcomes = await describeVpcsOutcomes(ec2, 50);
    const unauthorized = outcomes.filter((o) => o === 'UnauthorizedOperation').length;
    expect(outcomes.filter((o) => o === 'InternalError')).toHaveLength(50 - unauthorized);
    expect(unauthorized).toBeGreaterThan(0);
    const [first, second] = await faults.rules();
    expect(first).toMatchObject({ matched: 50, applied: unauthorized });
    expect(second).toMatchObject({ matched: 50 - unauthorized, applied: 50 - unauthorized });
    expect((await faults.injected()).byCode).toEqual({ UnauthorizedOperation: unauthorized, InternalError: 50 - unauthorized });
  }, 30_000);

  it('stops faulting once activeForMs has passed; the expired rule stays in the state', async () => {
    const { ec2, account } = client();
    await ec2.send(new DescribeVpcsCommand({}));
    await faults.addRules({ action: 'DescribeVpcs', code: 'UnauthorizedOperation', activeForMs: 1000, account });
    const added = Date.now();
    await expectEc2Error(ec2.send(new DescribeVpcsCommand({})), 'UnauthorizedOperation', /Injected UnauthorizedOperation/, 403);
    expect((await faults.rules())[0]?.status).toBe('active');
    await sleep(1200 - (Date.now() - added));
    const out = await ec2.send(new DescribeVpcsCommand({}));
    expect(out.Vpcs?.length).toBeGreaterThan(0);
    expect((await faults.rules())[0]).toMatchObject({ status: 'expired', applied: 1, matched: 1 });
  }, 30_000);

  it('starts faulting after startAfterMs, for activeForMs from then', async () => {
    const { ec2, account } = client();
    await ec2.send(new DescribeVpcsCommand({})); // moto sets up a new account on its first request: not inside the window
    const before = Date.now();
    const [rule] = await faults.addRules({ action: 'DescribeVpcs', code: 'UnauthorizedOperation', startAfterMs: 1000, activeForMs: 1500, account });
    const after = Date.now();
    expect(rule).toMatchObject({ status: 'pending', applied: 0 });
    expect(Date.parse(rule!.addedAt)).toBeGreaterThanOrEqual(before - 5);

    expect(await describeVpcsOutcomes(ec2, 3)).toEqual([undefined, undefined, undefined]);
    await sleep(after + 1200 - Date.now());
    expect((await faults.rules())[0]?.status).toBe('active');
    expect(await describeVpcsOutcomes(ec2, 2)).toEqual(['UnauthorizedOperation', 'UnauthorizedOperation']);
    await sleep(after + 2700 - Date.now());
    expect(await describeVpcsOutcomes(ec2, 2)).toEqual([undefined, undefined]);
    expect((await faults.rules())[0]).toMatchObject({ status: 'expired', applied: 2, matched: 2 });
    expect((await faults.counts(account)).DescribeVpcs).toBe(8);
  }, 30_000);

  it('reports injected faults per EC2 code, with EC2\'s HTTP status for each', async () => {
    const { ec2, account } = client();
    await faults.addRules([
      { action: 'DescribeVpcs', code: 'UnauthorizedOperation', count: 1, account },
      { action: 'DescribeVpcs', code: 'InternalError', count: 1, account },
      { action: 'DescribeVpcs', code: 'ServiceUnavailable', count: 1, account },
      { action: 'DescribeVpcs', code: 'RequestLimitExceeded', count: 2, account },
      { action: 'DescribeVpcs', code: 'InvalidParameterValue', count: 1, account },
      { action: 'DescribeVpcs', code: 'InternalError', httpStatus: 502, count: 1, account },
      { action: 'DescribeVpcs', dropConnection: true, count: 1, account },
      { action: 'DescribeVpcs', latencyMs: 50, count: 1, account },
    ]);
    const send = () => ec2.send(new DescribeVpcsCommand({}));
    await expectEc2Error(send(), 'UnauthorizedOperation', undefined, 403);
    await expectEc2Error(send(), 'InternalError', undefined, 500);
    await expectEc2Error(send(), 'ServiceUnavailable', undefined, 503);
    await expectEc2Error(send(), 'RequestLimitExceeded', /Request limit exceeded/, 503);
    await expectEc2Error(send(), 'RequestLimitExceeded', undefined, 503);
    await expectEc2Error(send(), 'InvalidParameterValue', undefined, 400);
    await expectEc2Error(send(), 'InternalError', undefined, 502);
    await expect(send()).rejects.toThrow();
    expect((await send()).Vpcs?.length).toBeGreaterThan(0);
    expect((await send()).Vpcs?.length).toBeGreaterThan(0);

    const s = await faults.state();
    expect(s.injected).toEqual({
      total: 9,
      byCode: { UnauthorizedOperation: 1, InternalError: 2, ServiceUnavailable: 1, RequestLimitExceeded: 2, InvalidParameterValue: 1 },
      dropped: 1,
      delayed: 1,
    });
    expect(s.rules.map((r) => [r.applied, r.status])).toEqual([
      [1, 'exhausted'], [1, 'exhausted'], [1, 'exhausted'], [2, 'exhausted'], [1, 'exhausted'], [1, 'exhausted'], [1, 'exhausted'], [1, 'exhausted'],
    ]);
    expect(s.counts.DescribeVpcs).toBe(10);

    await faults.clear();
    expect(await faults.injected()).toEqual({ total: 0, byCode: {}, dropped: 0, delayed: 0 });
  }, 30_000);

  it('rejects invalid probability, window and seed values', async () => {
    for (const bad of [
      { probability: 0 }, { probability: 1.5 }, { probability: -0.1 },
      { activeForMs: 0 }, { activeForMs: 1.5 }, { startAfterMs: -1 }, { every: 2 },
    ]) {
      await expect(faults.addRules({ action: 'DescribeVpcs', code: 'InternalError', ...bad } as never), JSON.stringify(bad)).rejects.toThrow(/HTTP 400/);
    }
    await faults.addRules({ action: 'DescribeVpcs', code: 'InternalError', probability: 1, startAfterMs: 0, activeForMs: 1, account: randomAccountId() });
    for (const bad of [-1, 2 ** 32, 1.5]) await expect(faults.setSeed(bad)).rejects.toThrow(/HTTP 400/);
    const seed = await faults.seed();
    expect(await faults.setSeed(0)).toBe(0);
    expect((await faults.state()).seed).toBe(0);
    expect(seed).toBeGreaterThanOrEqual(0);
  });
});

describe('real-EC2 behaviours moto lacks', () => {
  it('rejects attaching at an occupied device index (moto would replace it)', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const first = await createEni(ec2, subnet(world, 'multus-a').id);
    const second = await createEni(ec2, subnet(world, 'storage-a').id);
    await attach(ec2, first, node.id, 1);
    await expectEc2Error(attach(ec2, second, node.id, 1), 'InvalidParameterValue',
      new RegExp(`Instance '${node.id}' already has an interface attached at device index '1'\\.`));
    await expectEc2Error(attach(ec2, second, node.id, 0), 'InvalidParameterValue', /device index '0'/);
    expect((await describeEni(ec2, second)).Status).toBe('available');

    // The check is the proxy's: with fidelity off, moto accepts the same call.
    await faults.setFidelity({ enabled: false });
    await attach(ec2, second, node.id, 1);
  }, 30_000);

  it('rejects attaching an ENI from another availability zone', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const eni = await createEni(ec2, subnet(world, 'multus-b').id);
    await expectEc2Error(attach(ec2, eni, world.instances[0]!.id, 1), 'InvalidParameterValue', /same availability zone/);
  }, 30_000);

  it('rejects attaching an ENI that is already attached', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 2 });
    const [n0, n1] = [world.instances[0]!, world.instances[1]!];
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    await attach(ec2, eni, n0.id, 1);
    await expectEc2Error(attach(ec2, eni, n1.id, 1), 'InvalidNetworkInterface.InUse', new RegExp(eni));
    expect((await describeEni(ec2, eni)).Attachment?.InstanceId).toBe(n0.id);
  }, 30_000);

  it('serialises concurrent attaches so only one wins a device index', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const enis = await Promise.all([1, 2, 3].map(() => createEni(ec2, subnet(world, 'multus-a').id)));
    const results = await Promise.allSettled(enis.map((e) => attach(ec2, e, node.id, 2)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  }, 30_000);

  it('refuses to delete an in-use ENI, deletes it once detached', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    const attachmentId = await attach(ec2, eni, world.instances[0]!.id, 1);
    await expectEc2Error(ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni })), 'InvalidNetworkInterface.InUse',
      new RegExp(`The network interface '${eni}' is currently in use\\.`));
    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni }));
    await expectEc2Error(describeEni(ec2, eni), 'InvalidNetworkInterfaceID.NotFound');
  }, 30_000);

  it('refuses to tag an ENI that does not exist (moto tags any id) and tags nothing', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const [kept, gone] = [await createEni(ec2, subnet(world, 'multus-a').id), await createEni(ec2, subnet(world, 'multus-a').id)];
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: gone }));
    await expectEc2Error(ec2.send(new CreateTagsCommand({ Resources: [kept, gone], Tags: [{ Key: 'leaked', Value: 'x' }] })),
      'InvalidNetworkInterfaceID.NotFound', new RegExp(`The networkInterface ID '${gone}' does not exist`));
    expect((await describeEni(ec2, kept)).TagSet ?? []).toEqual([]);
    await ec2.send(new CreateTagsCommand({ Resources: [kept], Tags: [{ Key: 'leaked', Value: 'x' }] }));
    expect((await describeEni(ec2, kept)).TagSet).toEqual([{ Key: 'leaked', Value: 'x' }]);
  }, 30_000);

  it('refuses to detach the device-index-0 interface even when others are attached', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    await attach(ec2, await createEni(ec2, subnet(world, 'multus-a').id), node.id, 1);
    const primary = await describeEni(ec2, node.primaryEniId);
    await expectEc2Error(ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: primary.Attachment!.AttachmentId! })),
      'OperationNotPermitted', /device index 0/);
    expect((await describeEni(ec2, node.primaryEniId)).Attachment?.DeviceIndex).toBe(0);
  }, 30_000);
});

describe('CreateNetworkInterface ClientToken idempotency', () => {
  it('returns the original ENI for a repeated token, per account', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const subnetId = subnet(world, 'multus-a').id;
    const first = await createEni(ec2, subnetId, { ClientToken: 'nodeeni-a-node0-multus', Description: 'x' });
    const concurrent = await Promise.all([1, 2].map(() => createEni(ec2, subnetId, { ClientToken: 'nodeeni-a-node0-multus', Description: 'x' })));
    expect(concurrent).toEqual([first, first]);
    const inSubnet = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: [subnetId] }] }));
    expect(inSubnet.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([first]);

    await expectEc2Error(createEni(ec2, subnetId, { ClientToken: 'nodeeni-a-node0-multus', Description: 'changed' }), 'IdempotentParameterMismatch');

    // A token is scoped to its account: another account creates its own ENI.
    const other = client();
    const otherWorld = await seedWorld(other.ec2, { instances: 0 });
    const otherEni = await createEni(other.ec2, subnet(otherWorld, 'multus-a').id, { ClientToken: 'nodeeni-a-node0-multus', Description: 'x' });
    expect(otherEni).not.toBe(first);
  }, 30_000);

  it('rejects a token reused with different parameters (IdempotentParameterMismatch, HTTP 400) and creates nothing', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const [multus, storage] = [subnet(world, 'multus-a').id, subnet(world, 'storage-a').id];
    const token = 'nodeeni-b-node1-multus';
    const first = await createEni(ec2, multus, { ClientToken: token, Description: 'x' });
    for (const changed of [
      { subnetId: storage, extra: { Description: 'x' } },
      { subnetId: multus, extra: {} },
      { subnetId: multus, extra: { Description: 'y' } },
    ]) {
      await expectEc2Error(createEni(ec2, changed.subnetId, { ClientToken: token, ...changed.extra }),
        'IdempotentParameterMismatch', new RegExp(`client token '${token}'`), 400);
    }
    const enis = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: [multus, storage] }] }));
    expect(enis.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([first]);
    // The original parameters still return the original ENI.
    expect(await createEni(ec2, multus, { ClientToken: token, Description: 'x' })).toBe(first);
  }, 30_000);

  it('returns the earlier reply for a token reused after its ENI was deleted, creating no new ENI', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const subnetId = subnet(world, 'multus-a').id;
    const token = 'nodeeni-c-node2-multus';
    const first = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId, ClientToken: token, Description: 'x' }));
    const eniId = first.NetworkInterface!.NetworkInterfaceId!;
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eniId }));
    await expectEc2Error(describeEni(ec2, eniId), 'InvalidNetworkInterfaceID.NotFound');

    const again = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId, ClientToken: token, Description: 'x' }));
    expect(again.NetworkInterface).toEqual(first.NetworkInterface);
    expect(again.ClientToken).toBe(first.ClientToken);
    const inSubnet = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: [subnetId] }] }));
    expect(inSubnet.NetworkInterfaces ?? []).toEqual([]);
    // Different parameters are still a mismatch, deleted ENI or not.
    await expectEc2Error(createEni(ec2, subnetId, { ClientToken: token, Description: 'other' }), 'IdempotentParameterMismatch');
  }, 30_000);

  it('SDK-generated tokens keep distinct creates distinct', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 0 });
    const a = await createEni(ec2, subnet(world, 'multus-a').id);
    const b = await createEni(ec2, subnet(world, 'multus-a').id);
    expect(a).not.toBe(b);
  }, 30_000);
});

describe('transitional attachment states', () => {
  it('reports detaching (ENI still in use) for detachDelayMs, then available', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    const attachmentId = await attach(ec2, eni, node.id, 1);
    await faults.setFidelity({ detachDelayMs: 1500 });
    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));

    const during = await describeEni(ec2, eni);
    expect(during.Status).toBe('in-use');
    expect(during.Attachment).toMatchObject({ AttachmentId: attachmentId, Status: 'detaching' });
    await expectEc2Error(ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni })), 'InvalidNetworkInterface.InUse');
    await expectEc2Error(ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId })), 'IncorrectState', /detaching/);
    const slotTaken = await createEni(ec2, subnet(world, 'storage-a').id);
    await expectEc2Error(attach(ec2, slotTaken, node.id, 1), 'InvalidParameterValue', /device index '1'/);

    const deadline = Date.now() + 10_000;
    let after = await describeEni(ec2, eni);
    while (after.Status !== 'available' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      after = await describeEni(ec2, eni);
    }
    expect(after.Status).toBe('available');
    expect(after.Attachment).toBeUndefined();
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni }));
    await attach(ec2, slotTaken, node.id, 1);
  }, 30_000);

  it('reports attaching for attachDelayMs, then attached', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    await faults.setFidelity({ attachDelayMs: 1000 });
    const attachmentId = await attach(ec2, eni, world.instances[0]!.id, 1);
    const during = await describeEni(ec2, eni);
    expect(during.Status).toBe('in-use');
    expect(during.Attachment).toMatchObject({ AttachmentId: attachmentId, Status: 'attaching' });
    await expectEc2Error(ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId })), 'IncorrectState', /attaching/);
    await new Promise((r) => setTimeout(r, 1300));
    expect((await describeEni(ec2, eni)).Attachment?.Status).toBe('attached');
  }, 30_000);
});

function setDeleteOnTermination(ec2: EC2Client, eniId: string, attachmentId: string, value: boolean) {
  return ec2.send(new ModifyNetworkInterfaceAttributeCommand({
    NetworkInterfaceId: eniId,
    Attachment: { AttachmentId: attachmentId, DeleteOnTermination: value },
  }));
}

/** DeleteOnTermination per attachment id, as DescribeInstances reports the instance's interfaces. */
async function instanceDeleteOnTermination(ec2: EC2Client, instanceId: string): Promise<Record<string, boolean | undefined>> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const nics = out.Reservations?.[0]?.Instances?.[0]?.NetworkInterfaces ?? [];
  return Object.fromEntries(nics.map((n) => [n.Attachment?.AttachmentId ?? '', n.Attachment?.DeleteOnTermination]));
}

describe('attachment DeleteOnTermination', () => {
  it('records the value per attachment and reports it in every describe', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const [marked, other] = await Promise.all([createEni(ec2, subnet(world, 'multus-a').id), createEni(ec2, subnet(world, 'storage-a').id)]);
    const markedAttachment = await attach(ec2, marked, node.id, 1);
    const otherAttachment = await attach(ec2, other, node.id, 2);
    const primaryAttachment = (await describeEni(ec2, node.primaryEniId)).Attachment!.AttachmentId!;

    await setDeleteOnTermination(ec2, marked, markedAttachment, true);
    expect((await describeEni(ec2, marked)).Attachment).toMatchObject({ AttachmentId: markedAttachment, DeleteOnTermination: true, Status: 'attached' });
    expect((await describeEni(ec2, other)).Attachment?.DeleteOnTermination).toBe(false);
    expect(await instanceDeleteOnTermination(ec2, node.id)).toEqual({
      [primaryAttachment]: false, [markedAttachment]: true, [otherAttachment]: false,
    });
    const attribute = await ec2.send(new DescribeNetworkInterfaceAttributeCommand({ NetworkInterfaceId: marked, Attribute: 'attachment' }));
    expect(attribute.Attachment).toMatchObject({ AttachmentId: markedAttachment, DeleteOnTermination: true });

    await setDeleteOnTermination(ec2, marked, markedAttachment, false);
    expect((await describeEni(ec2, marked)).Attachment?.DeleteOnTermination).toBe(false);
    await setDeleteOnTermination(ec2, other, otherAttachment, true);
    expect(await instanceDeleteOnTermination(ec2, node.id)).toEqual({
      [primaryAttachment]: false, [markedAttachment]: false, [otherAttachment]: true,
    });

    // The value is the proxy's: plain moto keeps reporting false.
    await faults.setFidelity({ enabled: false });
    expect((await describeEni(ec2, other)).Attachment?.DeleteOnTermination).toBe(false);
  }, 30_000);

  it('keeps records apart per account', async () => {
    const a = client();
    const b = client();
    const [worldA, worldB] = await Promise.all([seedWorld(a.ec2, { instances: 1 }), seedWorld(b.ec2, { instances: 1 })]);
    const eniA = await createEni(a.ec2, subnet(worldA, 'multus-a').id);
    const eniB = await createEni(b.ec2, subnet(worldB, 'multus-a').id);
    const attachmentA = await attach(a.ec2, eniA, worldA.instances[0]!.id, 1);
    await attach(b.ec2, eniB, worldB.instances[0]!.id, 1);
    await setDeleteOnTermination(a.ec2, eniA, attachmentA, true);
    expect((await describeEni(a.ec2, eniA)).Attachment?.DeleteOnTermination).toBe(true);
    expect((await describeEni(b.ec2, eniB)).Attachment?.DeleteOnTermination).toBe(false);
    // Another account cannot address the attachment at all.
    await expectEc2Error(setDeleteOnTermination(b.ec2, eniB, attachmentA, true), 'InvalidAttachmentID.NotFound');
  }, 30_000);

  it('rejects an attachment id that is not the interface\'s attachment', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    await expectEc2Error(setDeleteOnTermination(ec2, eni, 'eni-attach-0123456789abcdef0', true), 'InvalidAttachmentID.NotFound',
      /'eni-attach-0123456789abcdef0' does not exist/);
    const attachmentId = await attach(ec2, eni, node.id, 1);
    const primaryAttachment = (await describeEni(ec2, node.primaryEniId)).Attachment!.AttachmentId!;
    await expectEc2Error(setDeleteOnTermination(ec2, eni, primaryAttachment, true), 'InvalidAttachmentID.NotFound');
    await expectEc2Error(setDeleteOnTermination(ec2, eni, 'eni-attach-0123456789abcdef0', true), 'InvalidAttachmentID.NotFound');
    await expectEc2Error(setDeleteOnTermination(ec2, 'eni-0123456789abcdef0', attachmentId, true), 'InvalidNetworkInterfaceID.NotFound');
    expect((await describeEni(ec2, eni)).Attachment?.DeleteOnTermination).toBe(false);
    expect((await describeEni(ec2, node.primaryEniId)).Attachment?.DeleteOnTermination).toBe(false);
  }, 30_000);

  it('forgets the value when the attachment is detached, also after a delayed detach', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 1 });
    const node = world.instances[0]!;
    const eni = await createEni(ec2, subnet(world, 'multus-a').id);
    const first = await attach(ec2, eni, node.id, 1);
    await setDeleteOnTermination(ec2, eni, first, true);
    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: first }));
    expect((await describeEni(ec2, eni)).Attachment).toBeUndefined();
    await expectEc2Error(setDeleteOnTermination(ec2, eni, first, false), 'InvalidAttachmentID.NotFound');

    const second = await attach(ec2, eni, node.id, 1);
    expect(second).not.toBe(first);
    expect((await describeEni(ec2, eni)).Attachment).toMatchObject({ AttachmentId: second, DeleteOnTermination: false });

    // While a delayed detach is in progress the attachment keeps its value.
    await setDeleteOnTermination(ec2, eni, second, true);
    await faults.setFidelity({ detachDelayMs: 800 });
    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: second }));
    expect((await describeEni(ec2, eni)).Attachment).toMatchObject({ AttachmentId: second, Status: 'detaching', DeleteOnTermination: true });
    await new Promise((r) => setTimeout(r, 1200));
    expect((await describeEni(ec2, eni)).Attachment).toBeUndefined();
    await expectEc2Error(setDeleteOnTermination(ec2, eni, second, true), 'InvalidAttachmentID.NotFound');
    // Terminating the instance must not delete the detached ENI.
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [node.id] }));
    expect((await describeEni(ec2, eni)).Status).toBe('available');
  }, 30_000);

  it('on TerminateInstances deletes DeleteOnTermination ENIs and detaches the others', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { instances: 2 });
    const [doomed, survivor] = [world.instances[0]!, world.instances[1]!];
    const multus = subnet(world, 'multus-a').id;
    const [deleted, keptExplicitly, keptByDefault, elsewhere] = await Promise.all([
      createEni(ec2, multus), createEni(ec2, multus), createEni(ec2, multus), createEni(ec2, multus),
    ]);
    const deletedAttachment = await attach(ec2, deleted, doomed.id, 1);
    const keptAttachment = await attach(ec2, keptExplicitly, doomed.id, 2);
    await attach(ec2, keptByDefault, doomed.id, 3);
    const elsewhereAttachment = await attach(ec2, elsewhere, survivor.id, 1);
    await setDeleteOnTermination(ec2, deleted, deletedAttachment, true);
    await setDeleteOnTermination(ec2, keptExplicitly, keptAttachment, true);
    await setDeleteOnTermination(ec2, keptExplicitly, keptAttachment, false);
    await setDeleteOnTermination(ec2, elsewhere, elsewhereAttachment, true);

    const out = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [doomed.id] }));
    expect(out.TerminatingInstances?.map((i) => i.InstanceId)).toEqual([doomed.id]);

    await expectEc2Error(describeEni(ec2, deleted), 'InvalidNetworkInterfaceID.NotFound');
    for (const eni of [keptExplicitly, keptByDefault]) {
      const after = await describeEni(ec2, eni);
      expect(after.Status).toBe('available');
      expect(after.Attachment).toBeUndefined();
    }
    expect((await describeEni(ec2, elsewhere)).Attachment).toMatchObject({ InstanceId: survivor.id, DeleteOnTermination: true, Status: 'attached' });
    // The interface at device index 0 stays as moto leaves it.
    expect((await describeEni(ec2, doomed.primaryEniId)).Attachment?.InstanceId).toBe(doomed.id);
    // A detached ENI is free for another instance.
    await attach(ec2, keptByDefault, survivor.id, 2);

    // With fidelity off, moto's plain termination leaves attached ENIs alone.
    await faults.setFidelity({ enabled: false });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [survivor.id] }));
    expect((await describeEni(ec2, elsewhere)).Status).toBe('in-use');
  }, 30_000);
});

describe('seedWorld', () => {
  it('builds VPCs, named subnets, security groups and instances across two AZs', async () => {
    const { ec2 } = client();
    const world = await seedWorld(ec2, { prefix: 't-' });
    expect(world.region).toBe('us-east-1');
    expect(world.subnets.map((s) => [s.name, s.az])).toEqual([
      ['t-nodes-a', 'us-east-1a'], ['t-nodes-b', 'us-east-1b'],
      ['t-multus-a', 'us-east-1a'], ['t-multus-b', 'us-east-1b'],
      ['t-storage-a', 'us-east-1a'], ['t-storage-b', 'us-east-1b'],
    ]);

    const byName = (name: string, vpcId?: string) => ec2.send(new DescribeSubnetsCommand({
      Filters: [{ Name: 'tag:Name', Values: [name] }, ...(vpcId ? [{ Name: 'vpc-id', Values: [vpcId] }] : [])],
    }));
    for (const s of world.subnets) {
      const found = await byName(s.name, world.vpcId);
      expect(found.Subnets?.map((x) => [x.SubnetId, x.CidrBlock, x.AvailabilityZone])).toEqual([[s.id, s.cidr, s.az]]);
    }
    const everywhere = await byName('t-multus-a');
    expect(everywhere.Subnets?.map((x) => x.VpcId).sort()).toEqual([world.vpcId, world.otherVpcId].sort());
    expect(world.otherVpcSubnet).toMatchObject({ name: 't-multus-a', az: 'us-east-1a' });

    const groups = await ec2.send(new DescribeSecurityGroupsCommand({
      Filters: [{ Name: 'group-name', Values: ['t-multus-sg', 't-storage-sg'] }, { Name: 'vpc-id', Values: [world.vpcId] }],
    }));
    expect(groups.SecurityGroups?.map((g) => [g.GroupName, g.GroupId, g.Tags?.find((t) => t.Key === 'Name')?.Value]).sort())
      .toEqual(world.securityGroups.map((g) => [g.name, g.id, g.name]).sort());

    expect(world.instances.map((i) => i.az)).toEqual(['us-east-1a', 'us-east-1a', 'us-east-1b']);
    for (const inst of world.instances) {
      const primary = await describeEni(ec2, inst.primaryEniId);
      expect(primary).toMatchObject({
        SubnetId: inst.subnetId,
        AvailabilityZone: inst.az,
        MacAddress: inst.primaryMac,
        PrivateIpAddress: inst.privateIp,
        Attachment: { InstanceId: inst.id, DeviceIndex: 0 },
      });
    }
    expect(new Set(world.instances.map((i) => i.id)).size).toBe(3);
  }, 30_000);
});

describe('AWS request throttling', () => {
  // Small buckets keep the tests fast; the 'aws' preset's figures are checked on their own.
  const SLOW = 0.02; // tokens per second: next to nothing refills during a burst

  afterEach(async () => {
    await faults.setThrottle('off');
  });

  /** Runs `send` n times one after another; per call, the EC2 code it failed with, or undefined. */
  async function outcomes(n: number, send: () => Promise<unknown>): Promise<(string | undefined)[]> {
    const out: (string | undefined)[] = [];
    for (let i = 0; i < n; i++) out.push(await send().then(() => undefined, (e: unknown) => (e as { name?: string }).name ?? 'unknown'));
    return out;
  }

  const ok = (n: number) => Array<undefined>(n).fill(undefined);
  const limited = (n: number) => Array<string>(n).fill('RequestLimitExceeded');

  /** A client in a fresh account whose first request (moto sets the account up then) is already made. */
  async function warmClient(): Promise<{ ec2: EC2Client; account: string; scope: string }> {
    const c = client();
    await c.ec2.send(new DescribeVpcsCommand({}));
    return { ...c, scope: `${c.account}/us-east-1` };
  }

  it('is off by default; the aws preset carries the documented figures', async () => {
    const off = await faults.throttle();
    expect(off.settings.enabled).toBe(false);
    expect(off.buckets).toEqual([]);

    const aws = await faults.setThrottle('aws');
    expect(aws).toEqual(AWS_THROTTLE);
    expect(aws.enabled).toBe(true);
    expect(aws.categories).toEqual({
      nonMutating: { capacity: 100, refillPerSecond: 20 },
      unfilteredNonMutating: { capacity: 50, refillPerSecond: 10 },
      mutating: { capacity: 50, refillPerSecond: 5 },
      resourceIntensive: { capacity: 50, refillPerSecond: 5 },
    });
    expect(aws.actions).toMatchObject({
      CreateNetworkInterface: { capacity: 100, refillPerSecond: 5 },
      DeleteNetworkInterface: { capacity: 100, refillPerSecond: 5 },
      ModifyNetworkInterfaceAttribute: { capacity: 100, refillPerSecond: 5 },
      CreateTags: { capacity: 100, refillPerSecond: 10 },
      RunInstances: { capacity: 5, refillPerSecond: 2 },
      TerminateInstances: { capacity: 100, refillPerSecond: 5 },
    });
    expect((await faults.state()).throttle).toEqual(AWS_THROTTLE);

    // The same preset as a start option; anything else is refused.
    const started = await startFaultProxy({ target: moto.endpoint, throttle: 'aws' });
    try {
      const other = new FaultProxyClient(started.endpoint);
      expect((await other.throttle()).settings).toEqual(AWS_THROTTLE);
      expect(await other.setThrottle('off')).toEqual(OFF);
    } finally {
      await started.stop();
    }
    await expect(startFaultProxy({ target: moto.endpoint, throttle: 'fast' as never })).rejects.toThrow(/throttle/);
    await expect(startFaultProxy({ target: moto.endpoint, throttle: { ...AWS_THROTTLE, enabled: 'yes' } as never })).rejects.toThrow(/throttle/);
  }, 30_000);

  it('answers exactly the calls beyond a bucket\'s capacity with RequestLimitExceeded (503); other actions and accounts keep their own buckets', async () => {
    const a = await warmClient();
    const b = await warmClient();
    await faults.setThrottle({
      preset: 'off',
      enabled: true,
      categories: { nonMutating: { capacity: 5, refillPerSecond: SLOW }, mutating: { capacity: 2, refillPerSecond: SLOW } },
    });

    const vpcs = () => a.ec2.send(new DescribeVpcsCommand({}));
    expect(await outcomes(8, vpcs)).toEqual([...ok(5), ...limited(3)]);
    await expectEc2Error(vpcs(), 'RequestLimitExceeded', /Request limit exceeded/, 503);

    // Another action in the same account, and the same action in another account: full buckets.
    expect(await outcomes(5, () => a.ec2.send(new DescribeSubnetsCommand({})))).toEqual(ok(5));
    expect(await outcomes(6, () => b.ec2.send(new DescribeVpcsCommand({})))).toEqual([...ok(5), ...limited(1)]);

    // A mutating call (moto answers each with its own error: served, not throttled).
    const del = () => a.ec2.send(new DeleteSecurityGroupCommand({ GroupId: 'sg-0123456789abcdef0' }));
    const deletes = await outcomes(4, del);
    expect(deletes.slice(2)).toEqual(limited(2));
    expect(deletes.slice(0, 2).every((o) => o !== undefined && o !== 'RequestLimitExceeded')).toBe(true);

    const s = await faults.state();
    expect(s.countsByAccount[a.account]).toEqual({ DescribeVpcs: 10, DescribeSubnets: 5, DeleteSecurityGroup: 4 }); // the warm-up call included
    expect(s.throttled).toEqual({ total: 7, byAction: { DescribeVpcs: 5, DeleteSecurityGroup: 2 } }); // both accounts
    expect(s.served[a.scope]).toEqual({ 'DescribeVpcs:nonMutating': 5, 'DescribeSubnets:nonMutating': 5, 'DeleteSecurityGroup:mutating': 2 });
    expect(s.served[b.scope]).toEqual({ 'DescribeVpcs:nonMutating': 5 });
    expect(s.injected.total).toBe(0);

    const buckets = (await faults.throttle()).buckets.filter((x) => x.account === a.account);
    expect(buckets.map((x) => [x.bucket, x.category, x.capacity, x.refillPerSecond]).sort()).toEqual([
      ['DeleteSecurityGroup:mutating', 'mutating', 2, SLOW],
      ['DescribeSubnets:nonMutating', 'nonMutating', 5, SLOW],
      ['DescribeVpcs:nonMutating', 'nonMutating', 5, SLOW],
    ]);
    for (const x of buckets) expect(x.tokens).toBeLessThan(1);
  }, 30_000);

  it('refills continuously at the bucket\'s rate: one call per 1/refill seconds, never beyond capacity', async () => {
    const { ec2 } = await warmClient();
    await faults.setThrottle({ preset: 'off', enabled: true, categories: { nonMutating: { capacity: 2, refillPerSecond: 1 } } });
    const vpcs = () => ec2.send(new DescribeVpcsCommand({}));

    expect(await outcomes(3, vpcs)).toEqual([undefined, undefined, 'RequestLimitExceeded']);
    const emptied = Date.now();
    await sleep(400);
    // Less than one token back before a second has passed.
    expect(await outcomes(1, vpcs)).toEqual(limited(1));
    await sleep(emptied + 1200 - Date.now());
    expect(await outcomes(2, vpcs)).toEqual([undefined, 'RequestLimitExceeded']);
    const [bucket] = (await faults.throttle()).buckets.filter((x) => x.bucket === 'DescribeVpcs:nonMutating');
    expect(bucket!.tokens).toBeGreaterThanOrEqual(0);
    expect(bucket!.tokens).toBeLessThan(1);

    // Idle long enough to refill twice over: still only `capacity` in one go.
    await sleep(3000);
    expect(await outcomes(3, vpcs)).toEqual([undefined, undefined, 'RequestLimitExceeded']);
  }, 30_000);

  it('puts unfiltered, unpaginated DescribeNetworkInterfaces in its own, smaller bucket', async () => {
    const { ec2, scope } = await warmClient();
    await faults.setThrottle({
      preset: 'aws',
      categories: { nonMutating: { capacity: 3, refillPerSecond: SLOW }, unfilteredNonMutating: { capacity: 1, refillPerSecond: SLOW } },
    });
    const unfiltered = () => ec2.send(new DescribeNetworkInterfacesCommand({}));
    const filtered = () => ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: ['subnet-12345678'] }] }));
    const paginated = () => ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 5 }));

    expect(await outcomes(2, unfiltered)).toEqual([undefined, 'RequestLimitExceeded']);
    expect(await outcomes(2, filtered)).toEqual(ok(2));
    expect(await outcomes(1, paginated)).toEqual(ok(1));
    expect(await outcomes(1, filtered)).toEqual(limited(1));
    // DescribeVpcs is not in the doc's short list: unfiltered, it uses the ordinary bucket.
    expect(await outcomes(4, () => ec2.send(new DescribeVpcsCommand({})))).toEqual([...ok(3), ...limited(1)]);

    expect((await faults.served())[scope]).toEqual({
      'DescribeNetworkInterfaces:unfilteredNonMutating': 1,
      'DescribeNetworkInterfaces:nonMutating': 3,
      'DescribeVpcs:nonMutating': 3,
    });
    expect((await faults.throttle()).buckets.map((x) => x.bucket).sort()).toEqual([
      'DescribeNetworkInterfaces:nonMutating', 'DescribeNetworkInterfaces:unfilteredNonMutating', 'DescribeVpcs:nonMutating',
    ]);
  }, 30_000);

  it('decides before the rules, counts what it throttled and served, and clear resets both and refills', async () => {
    const { ec2, account, scope } = await warmClient();
    await faults.setThrottle({ preset: 'off', enabled: true, categories: { nonMutating: { capacity: 2, refillPerSecond: SLOW } } });
    await faults.addRules({ action: 'DescribeVpcs', code: 'InternalError', account });
    const vpcs = () => ec2.send(new DescribeVpcsCommand({}));

    expect(await outcomes(4, vpcs)).toEqual(['InternalError', 'InternalError', 'RequestLimitExceeded', 'RequestLimitExceeded']);
    let s = await faults.state();
    expect(s.counts.DescribeVpcs).toBe(5); // the warm-up call included
    expect(s.rules[0]).toMatchObject({ matched: 2, applied: 2 });
    expect(s.injected).toMatchObject({ total: 2, byCode: { InternalError: 2 } });
    expect(s.throttled).toEqual({ total: 2, byAction: { DescribeVpcs: 2 } });
    expect(await faults.throttled()).toEqual(s.throttled);
    expect(s.served[scope]).toEqual({ 'DescribeVpcs:nonMutating': 2 }); // since setThrottle refilled the buckets

    await faults.clear();
    s = await faults.state();
    expect(s.throttled).toEqual({ total: 0, byAction: {} });
    expect(s.served).toEqual({});
    expect(s.throttle.categories.nonMutating).toEqual({ capacity: 2, refillPerSecond: SLOW });
    expect((await faults.throttle()).buckets).toEqual([]);
    expect(await outcomes(3, vpcs)).toEqual([undefined, undefined, 'RequestLimitExceeded']);

    // What was served since the clear, under the proxy's figures and under others.
    expect(await faults.throttleLowerBoundSeconds()).toBe(0);
    const tight: ThrottleSettings = { ...OFF, enabled: true, categories: { ...OFF.categories, nonMutating: { capacity: 1, refillPerSecond: 0.5 } } };
    expect(await faults.throttleLowerBoundSeconds(tight)).toBe(2);

    // Setting the throttle refills every bucket.
    await faults.setThrottle({});
    expect(await outcomes(1, vpcs)).toEqual(ok(1));
  }, 30_000);

  it('rejects bad settings with HTTP 400 and keeps the current ones; the control API is never throttled', async () => {
    await faults.setThrottle({ preset: 'off', enabled: true, categories: { nonMutating: { capacity: 1, refillPerSecond: SLOW } } });
    const before = (await faults.throttle()).settings;
    for (const bad of [
      { preset: 'fast' },
      { enabled: 'yes' },
      { categories: { mutating: { capacity: 0 } } },
      { categories: { mutating: { refillPerSecond: -1 } } },
      { categories: { console: { capacity: 10, refillPerSecond: 1 } } },
      { actions: { 'describe-vpcs': { capacity: 10, refillPerSecond: 1 } } },
      { actions: { DescribeVpcs: { capacity: 10 } } },
      { burst: 10 },
    ]) {
      await expect(faults.setThrottle(bad as never), JSON.stringify(bad)).rejects.toThrow(/HTTP 400/);
    }
    for (const body of ['not json', '', '42', '"fast"']) {
      const res = await fetch(`${proxy.endpoint}/__faults/throttle`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status, body).toBe(400);
      expect(await res.json()).toHaveProperty('error');
    }
    expect((await faults.throttle()).settings).toEqual(before);

    // A bare preset name works as a body too.
    const res = await fetch(`${proxy.endpoint}/__faults/throttle`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '"aws"' });
    expect(res.status).toBe(200);
    expect((await faults.throttle()).settings).toEqual(AWS_THROTTLE);

    await faults.setThrottle({ preset: 'off', enabled: true, categories: { nonMutating: { capacity: 1, refillPerSecond: SLOW } } });
    for (let i = 0; i < 20; i++) await faults.state();
    expect((await faults.throttled()).total).toBe(0);
  }, 30_000);

  describe('model (no proxy)', () => {
    const call = (action: string, params: Record<string, string> = {}) => ({ action, params: new URLSearchParams(params) });

    it('classifies by action name and by filter, ID-list and pagination parameters', () => {
      const cases: [string, Record<string, string>, string][] = [
        ['DescribeNetworkInterfaces', {}, 'unfilteredNonMutating'],
        ['DescribeNetworkInterfaces', { DryRun: 'false' }, 'unfilteredNonMutating'],
        ['DescribeNetworkInterfaces', { 'Filter.1.Name': 'subnet-id', 'Filter.1.Value.1': 'subnet-1' }, 'nonMutating'],
        ['DescribeNetworkInterfaces', { 'NetworkInterfaceId.1': 'eni-1' }, 'nonMutating'],
        ['DescribeNetworkInterfaces', { MaxResults: '5' }, 'nonMutating'],
        ['DescribeNetworkInterfaces', { NextToken: 't' }, 'nonMutating'],
        ['DescribeInstances', {}, 'unfilteredNonMutating'],
        ['DescribeInstances', { 'InstanceId.1': 'i-1' }, 'nonMutating'],
        ['DescribeSecurityGroups', { 'GroupName.1': 'default' }, 'nonMutating'],
        ['DescribeVpcs', {}, 'nonMutating'],
        ['DescribeSubnets', {}, 'nonMutating'],
        ['GetConsoleOutput', { InstanceId: 'i-1' }, 'nonMutating'],
        ['ListImagesInRecycleBin', {}, 'nonMutating'],
        ['SearchTransitGatewayRoutes', {}, 'nonMutating'],
        ['CreateNetworkInterface', { SubnetId: 'subnet-1' }, 'mutating'],
        ['AttachNetworkInterface', {}, 'mutating'],
        ['AuthorizeSecurityGroupIngress', {}, 'resourceIntensive'],
        ['RequestSpotInstances', {}, 'resourceIntensive'],
      ];
      for (const [action, params, category] of cases) {
        expect(classify(call(action, params)), `${action} ${JSON.stringify(params)}`).toEqual({ category, bucket: `${action}:${category}` });
      }
    });

    it('lowerBoundSeconds: per bucket (calls − capacity) / refill, the largest over buckets', () => {
      expect(lowerBoundSeconds({}, AWS_THROTTLE)).toBe(0);
      expect(lowerBoundSeconds({ 'AttachNetworkInterface:mutating': 50 }, AWS_THROTTLE)).toBe(0);
      expect(lowerBoundSeconds({ 'AttachNetworkInterface:mutating': 60 }, AWS_THROTTLE)).toBe(2); // (60 − 50) / 5
      expect(lowerBoundSeconds({ 'DescribeNetworkInterfaces:unfilteredNonMutating': 150 }, AWS_THROTTLE)).toBe(10); // (150 − 50) / 10
      expect(lowerBoundSeconds({ 'DescribeNetworkInterfaces:nonMutating': 150 }, AWS_THROTTLE)).toBe(2.5); // (150 − 100) / 20
      expect(lowerBoundSeconds({ 'CreateNetworkInterface:mutating': 200 }, AWS_THROTTLE)).toBe(20); // its own figures: (200 − 100) / 5
      // Buckets refill side by side: the slowest decides, the others do not add up.
      expect(lowerBoundSeconds({
        'AttachNetworkInterface:mutating': 60,
        'CreateNetworkInterface:mutating': 200,
        'DescribeNetworkInterfaces:unfilteredNonMutating': 150,
        'RunInstances:mutating': 4,
      }, AWS_THROTTLE)).toBe(20);
      // A bare action name stands for its filtered bucket.
      expect(lowerBoundSeconds({ DescribeNetworkInterfaces: 150 }, AWS_THROTTLE)).toBe(2.5);
      expect(lowerBoundSeconds({ RunInstances: 25 }, AWS_THROTTLE)).toBe(10); // (25 − 5) / 2
      // From empty buckets, every call waits for its token.
      expect(lowerBoundSeconds({ 'AttachNetworkInterface:mutating': 60 }, AWS_THROTTLE, { start: 'empty' })).toBe(12);
      expect(lowerBoundSeconds({ 'AttachNetworkInterface:mutating': 6000 }, OFF)).toBe(0);
      expect(() => lowerBoundSeconds({ 'DescribeVpcs:console': 1 }, AWS_THROTTLE)).toThrow(/category/);
      // Accounts and Regions have their own buckets too.
      expect(lowerBoundSecondsAll({
        '111111111111/us-east-1': { 'AttachNetworkInterface:mutating': 60 },
        '222222222222/us-east-1': { 'AttachNetworkInterface:mutating': 75 },
      }, AWS_THROTTLE)).toBe(5);
      expect(lowerBoundSecondsAll({}, AWS_THROTTLE)).toBe(0);
    });

    it('token buckets: lazily full, continuous refill capped at capacity, per account and Region; the bound is what they force', () => {
      let now = 0;
      const settings: ThrottleSettings = { ...OFF, enabled: true, categories: { ...OFF.categories, mutating: { capacity: 3, refillPerSecond: 2 } } };
      const buckets = new ThrottleBuckets(settings, () => now);
      const attach = (account = '111111111111', region = 'us-east-1') => buckets.take({ ...call('AttachNetworkInterface'), account, region }).allowed;

      expect([attach(), attach(), attach(), attach()]).toEqual([true, true, true, false]);
      expect(attach('222222222222')).toBe(true);
      expect(attach('111111111111', 'eu-west-1')).toBe(true);
      now += 499;
      expect(attach()).toBe(false);
      now += 1;
      expect(attach()).toBe(true);
      expect(attach()).toBe(false);
      now += 60_000;
      expect(buckets.snapshot().find((b) => b.account === '111111111111' && b.region === 'us-east-1')?.tokens).toBe(3);

      // Calls arriving every millisecond: the 20th is served (20 − 3) / 2 s after the first, as lowerBoundSeconds says.
      buckets.refillAll();
      const start = now;
      let served = 0;
      while (served < 20) {
        if (attach()) served++;
        if (served < 20) now += 1;
      }
      expect((now - start) / 1000).toBeCloseTo(lowerBoundSeconds({ 'AttachNetworkInterface:mutating': 20 }, settings), 2);

      buckets.set(OFF);
      expect([attach(), attach(), attach(), attach(), attach()]).toEqual([true, true, true, true, true]);
      expect(buckets.snapshot()).toEqual([]);
    });
  });
});
