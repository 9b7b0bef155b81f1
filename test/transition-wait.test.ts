// The waits for EC2's transitions (waitForAttachment, waitForDetached in activities/ec2/ec2-activities.ts)
// against moto through the fault proxy, whose attachments pass through `attaching` (0.6 s) and
// `detaching` (0.9 s) as EC2's do. A wait learns from the waits before it when a transition is usually
// over (activities/ec2/transition-clock.ts) and sends no DescribeNetworkInterfaces before then, so a
// learned wait costs a poll or two instead of one every 50 ms. A retry polls at once; a bound shorter
// than the learned delay is kept.
import {
  AttachNetworkInterfaceCommand, CreateNetworkInterfaceCommand, DeleteNetworkInterfaceCommand, DetachNetworkInterfaceCommand,
} from '@aws-sdk/client-ec2';
import { MockActivityEnvironment } from '@temporalio/testing';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEc2Activities } from '../activities/ec2/ec2-activities.js';
import { TransitionClock } from '../activities/ec2/transition-clock.js';
import { createTestCluster, TEST_EC2_TRANSITIONS, type TestCluster } from './support/cluster.js';

let c: TestCluster;
beforeAll(async () => {
  c = await createTestCluster({ instances: 1, controlWorker: false, watcher: false });
});
afterAll(async () => {
  await c?.dispose();
});

const describes = async () => (await c.fault.counts(c.account)).DescribeNetworkInterfaces ?? 0;
/** The bucket's 10 saved requests are back after 2 s idle (one per 200 ms). */
const REFILL_MS = 2_200;

async function newEni(): Promise<string> {
  const instance = c.world.instances[0]!;
  const subnet = c.world.subnets.find((s) => s.az === instance.az && s.name.startsWith('multus'))!;
  return (await c.ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnet.id }))).NetworkInterface!.NetworkInterfaceId!;
}

type Ec2Activities = ReturnType<typeof createEc2Activities>;

/** The activity as a worker runs it: `attempt` 1 is a first try. */
function waitAttached(activities: Ec2Activities, eniId: string, attachmentId: string, attempt = 1) {
  return new MockActivityEnvironment({ attempt }).run(activities.waitForAttachment, { eniId, attachmentId }) as ReturnType<Ec2Activities['waitForAttachment']>;
}

function waitDetached(activities: Ec2Activities, eniId: string, timeoutMs: number) {
  return new MockActivityEnvironment().run(activities.waitForDetached, { eniId, timeoutMs }) as ReturnType<Ec2Activities['waitForDetached']>;
}

async function attach(eniId: string): Promise<string> {
  const out = await c.ec2.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: eniId, InstanceId: c.world.instances[0]!.id, DeviceIndex: 1 }));
  return out.AttachmentId!;
}

describe('waits for attaching and detaching', () => {
  it('learn how long the transitions take and ask less while the answer cannot have changed', async () => {
    expect(TEST_EC2_TRANSITIONS).toEqual({ attachDelayMs: 600, detachDelayMs: 900 });
    const activities = createEc2Activities({ ec2: c.ec2 });
    const cost: Array<{ attach: number; detach: number }> = [];
    for (let round = 0; round < 4; round++) {
      await sleep(REFILL_MS);
      const eniId = await newEni();
      let before = await describes();
      const attachmentId = await attach(eniId);
      const attached = await waitAttached(activities, eniId, attachmentId);
      expect(attached.deviceIndex).toBe(1);
      const attach1 = (await describes()) - before;

      await sleep(REFILL_MS);
      before = await describes();
      await c.ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));
      expect(await waitDetached(activities, eniId, 10_000)).toEqual({ detached: true });
      cost.push({ attach: attach1, detach: (await describes()) - before });
      await c.ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eniId }));
    }
    // The first waits poll every 50 ms from the start; the learned ones from just before the end.
    expect(cost[0]!.attach, JSON.stringify(cost)).toBeGreaterThanOrEqual(6);
    expect(cost[0]!.detach, JSON.stringify(cost)).toBeGreaterThanOrEqual(6);
    for (const later of cost.slice(2)) {
      expect(later.attach, JSON.stringify(cost)).toBeLessThanOrEqual(3);
      expect(later.detach, JSON.stringify(cost)).toBeLessThanOrEqual(3);
    }
  });

  it('a retry polls at once, and a bound shorter than the learned delay is kept', async () => {
    const activities = createEc2Activities({ ec2: c.ec2 });
    const learnOn = async (eniId: string) => {
      const attachmentId = await attach(eniId);
      await waitAttached(activities, eniId, attachmentId);
      await c.ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));
      await waitDetached(activities, eniId, 10_000);
    };
    const eniId = await newEni();
    await learnOn(eniId);
    await learnOn(eniId);

    // A second try: the transition may have ended while the first one's worker was gone.
    await sleep(REFILL_MS);
    let before = await describes();
    const attachmentId = await attach(eniId);
    await waitAttached(activities, eniId, attachmentId, 2);
    expect((await describes()) - before).toBeGreaterThanOrEqual(6);

    // 100 ms is less than the 0.8 s or so detaching was learned to take: the wait looks once, at its bound.
    await sleep(REFILL_MS);
    before = await describes();
    await c.ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));
    expect(await waitDetached(activities, eniId, 100)).toEqual({ detached: false, status: 'detaching' });
    expect((await describes()) - before).toBe(1);
    expect(await waitDetached(activities, eniId, 10_000)).toEqual({ detached: true });
    await c.ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eniId }));
  });
});

describe('TransitionClock', () => {
  it('delays a first poll until the earliest a recent wait found the change made, and creeps down when a first poll finds it made', () => {
    const clock = new TransitionClock();
    expect(clock.firstPollDelayMs('attaching')).toBe(0);
    // Two waits whose second or later poll found the change: at 620 and 650 ms.
    clock.waitEnded('attaching', 620, false);
    clock.waitEnded('attaching', 650, false);
    expect(clock.firstPollDelayMs('attaching')).toBe(620);
    expect(clock.firstPollDelayMs('detaching')).toBe(0);
    // The first poll, at 620 ms, already found it made: it may have been made well before, so a tenth less.
    clock.waitEnded('attaching', 620, true);
    expect(clock.firstPollDelayMs('attaching')).toBe(558);
    // EC2 got much faster: every first poll finds it made, and the delay falls by a tenth each time.
    for (let i = 0; i < 5; i++) clock.waitEnded('attaching', clock.firstPollDelayMs('attaching'), true);
    expect(clock.firstPollDelayMs('attaching')).toBe(329);
    // Only the last 16 waits count: the fast ones are forgotten after 16 slower ones.
    for (let i = 0; i < 16; i++) clock.waitEnded('attaching', 600, false);
    expect(clock.firstPollDelayMs('attaching')).toBe(600);
    // However long a transition took, a first poll waits at most 5 s.
    for (let i = 0; i < 16; i++) clock.waitEnded('detaching', 60_000, false);
    expect(clock.firstPollDelayMs('detaching')).toBe(5_000);
  });
});
