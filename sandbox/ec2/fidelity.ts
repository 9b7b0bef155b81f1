// Real-EC2 behaviours moto lacks (test-backends.md §1.3), applied by the fault
// proxy in front of moto: ENI in-use / AZ / device-index checks, primary-ENI
// detach refusal, CreateNetworkInterface ClientToken idempotency, optional
// attaching/detaching transitional states, attachment DeleteOnTermination (set
// with ModifyNetworkInterfaceAttribute, honoured by TerminateInstances), CreateTags
// refusing an ENI that does not exist. moto's
// state is read and changed with the SDK straight from moto, in the caller's
// region and account.
import {
  DeleteNetworkInterfaceCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  type Instance,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import { AttachmentChangeLog, type AttachmentChange } from './attachment-changes.js';
import { makeEc2Client } from './client.js';
import {
  ec2ErrorReply,
  ec2ReturnTrueReply,
  firstTagText,
  pageNetworkInterfaces,
  rewriteAttachments,
  type AttachmentOverride,
  type Ec2Reply,
} from './ec2-xml.js';

/** One EC2 Query API request as the proxy sees it. */
export interface Ec2Call {
  action: string;
  params: URLSearchParams;
  region: string;
  /** The moto account the request addresses (header value, or moto's default). */
  account: string;
  /** The raw x-moto-account-id header, if the client sent one. */
  accountHeader: string | undefined;
}

/** What a handler may do with the request it is given. */
export interface Exchange {
  call: Ec2Call;
  /** Sends the request to moto unchanged and streams moto's answer back; resolves when it is delivered. */
  forward(): Promise<void>;
  /** Sends the request to moto and buffers the answer without replying. */
  fetchUpstream(): Promise<Ec2Reply>;
  send(reply: Ec2Reply): void;
}

export interface FidelitySettings {
  /** All real-EC2 behaviours on (default) or off (plain moto). */
  enabled: boolean;
  /** For this long after an attach, its attachment reports `attaching`. 0 = off. */
  attachDelayMs: number;
  /** For this long after a detach, its attachment reports `detaching` and the ENI stays in use. 0 = off. */
  detachDelayMs: number;
  /**
   * DescribeNetworkInterfaces honours MaxResults and NextToken as EC2 does
   * (moto answers everything at once). Off unless asked for, so the traffic
   * other tests and the benchmark measure stays as it was.
   */
  paginate: boolean;
}

type TransitionStatus = 'attaching' | 'detaching';

interface Transition {
  scope: string;
  status: TransitionStatus;
  timer: NodeJS.Timeout;
}

interface TokenRecord {
  fingerprint: string;
  /** The original successful reply; undefined once the original failed. */
  reply: Promise<Ec2Reply | undefined>;
}

/** Runs tasks one at a time per key, so check-then-act sequences do not interleave. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/**
 * DeleteOnTermination per attachment, per account and region. moto ignores
 * `Attachment.DeleteOnTermination` in ModifyNetworkInterfaceAttribute and
 * reports false for every AttachNetworkInterface attachment, so the proxy keeps
 * the value real EC2 would.
 */
class DeleteOnTerminationRecords {
  private readonly byScope = new Map<string, Map<string, boolean>>();

  set(scope: string, attachmentId: string, value: boolean): void {
    let records = this.byScope.get(scope);
    if (!records) this.byScope.set(scope, (records = new Map()));
    records.set(attachmentId, value);
  }

  get(scope: string, attachmentId: string): boolean | undefined {
    return this.byScope.get(scope)?.get(attachmentId);
  }

  forget(scope: string, attachmentId: string): void {
    const records = this.byScope.get(scope);
    records?.delete(attachmentId);
    if (records?.size === 0) this.byScope.delete(scope);
  }

  inScope(scope: string): ReadonlyMap<string, boolean> {
    return this.byScope.get(scope) ?? new Map();
  }

  clear(): void {
    this.byScope.clear();
  }
}

const DESCRIBES_WITH_ATTACHMENTS = new Set(['DescribeNetworkInterfaces', 'DescribeInstances', 'DescribeNetworkInterfaceAttribute']);

function inUse(eniId: string): Ec2Reply {
  // Code from the EC2 error-code reference ("currently in use and cannot be
  // deleted or attached to another instance"); the same wording is used for both.
  return ec2ErrorReply(400, 'InvalidNetworkInterface.InUse', `The network interface '${eniId}' is currently in use.`);
}

export class Ec2Fidelity {
  private current: FidelitySettings = { enabled: true, attachDelayMs: 0, detachDelayMs: 0, paginate: false };
  private readonly inspectors = new Map<string, EC2Client>();
  private readonly transitions = new Map<string, Transition>();
  private readonly tokens = new Map<string, TokenRecord>();
  private readonly deleteOnTermination = new DeleteOnTerminationRecords();
  private readonly lock = new KeyedLock();
  /** The attachments this proxy made and ended (attach, detach, terminate), in order, for simulated hypervisors. */
  readonly changes = new AttachmentChangeLog();

  constructor(private readonly target: string) {}

  get settings(): FidelitySettings {
    return { ...this.current };
  }

  update(partial: Partial<FidelitySettings>): FidelitySettings {
    this.current = { ...this.current, ...partial };
    return this.settings;
  }

  /** Forgets transitional states (without applying pending detaches), remembered tokens and DeleteOnTermination values. */
  stop(): void {
    for (const t of this.transitions.values()) clearTimeout(t.timer);
    this.transitions.clear();
    this.tokens.clear();
    this.deleteOnTermination.clear();
    for (const c of this.inspectors.values()) c.destroy();
    this.inspectors.clear();
  }

  /** Handles the request completely: replies itself or forwards to moto. */
  async handle(x: Exchange): Promise<void> {
    const { call } = x;
    if (!this.current.enabled || call.params.get('DryRun') === 'true') return x.forward();
    const scope = `${call.account}|${call.region}`;
    switch (call.action) {
      case 'AttachNetworkInterface':
        return this.lock.run(scope, () => this.attach(x, scope));
      case 'DetachNetworkInterface':
        return this.lock.run(scope, () => this.detach(x, scope));
      case 'DeleteNetworkInterface':
        return this.lock.run(scope, () => this.delete(x));
      case 'CreateNetworkInterface':
        return this.createIdempotently(x, scope);
      case 'ModifyNetworkInterfaceAttribute':
        if (!call.params.has('Attachment.AttachmentId')) return x.forward();
        return this.lock.run(scope, () => this.modifyAttachment(x, scope));
      case 'TerminateInstances':
        return this.lock.run(scope, () => this.terminate(x, scope));
      case 'CreateTags':
        return this.lock.run(scope, () => this.createTags(x));
      default:
        if (DESCRIBES_WITH_ATTACHMENTS.has(call.action)) return this.describeWithOverrides(x, scope);
        return x.forward();
    }
  }

  private inspector(call: Ec2Call): EC2Client {
    const key = `${call.accountHeader ?? ''}|${call.region}`;
    let client = this.inspectors.get(key);
    if (!client) {
      client = makeEc2Client({ endpoint: this.target, region: call.region, account: call.accountHeader, maxAttempts: 3 });
      this.inspectors.set(key, client);
    }
    return client;
  }

  private async findEni(call: Ec2Call, filterName: string, value: string): Promise<NetworkInterface | undefined> {
    const out = await this.inspector(call).send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: filterName, Values: [value] }] }));
    return out.NetworkInterfaces?.[0];
  }

  private async findInstance(call: Ec2Call, instanceId: string): Promise<Instance | undefined> {
    const out = await this.inspector(call).send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] }));
    return out.Reservations?.flatMap((r) => r.Instances ?? [])[0];
  }

  private activeTransition(attachmentId: string | undefined): Transition | undefined {
    return attachmentId === undefined ? undefined : this.transitions.get(attachmentId);
  }

  private async attach(x: Exchange, scope: string): Promise<void> {
    const p = x.call.params;
    const eniId = p.get('NetworkInterfaceId');
    const instanceId = p.get('InstanceId');
    const deviceIndex = Number(p.get('DeviceIndex'));
    const cardIndex = Number(p.get('NetworkCardIndex') ?? '0');
    if (!eniId || !instanceId || !Number.isInteger(deviceIndex)) return x.forward();
    const [eni, instance] = await Promise.all([this.findEni(x.call, 'network-interface-id', eniId), this.findInstance(x.call, instanceId)]);
    // Unknown ids: moto already answers with the right NotFound error.
    if (!eni || !instance) return x.forward();
    if (eni.Attachment) return x.send(inUse(eniId));
    const instanceAz = instance.Placement?.AvailabilityZone;
    if (eni.AvailabilityZone !== instanceAz) {
      // Real EC2 refuses cross-AZ attachment (User Guide, "same Availability
      // Zone"); its exact code and wording were not found, so this code and
      // message are our choice.
      return x.send(ec2ErrorReply(400, 'InvalidParameterValue',
        `The network interface '${eniId}' is in availability zone '${eni.AvailabilityZone}' and instance '${instanceId}' is in '${instanceAz}'; they must be in the same availability zone.`));
    }
    const taken = (instance.NetworkInterfaces ?? []).some(
      (n) => n.Attachment?.DeviceIndex === deviceIndex && (n.Attachment.NetworkCardIndex ?? 0) === cardIndex,
    );
    if (taken) {
      return x.send(ec2ErrorReply(400, 'InvalidParameterValue', `Instance '${instanceId}' already has an interface attached at device index '${deviceIndex}'.`));
    }
    const reply = await x.fetchUpstream();
    const attachmentId = reply.status === 200 ? firstTagText(reply.body.toString(), 'attachmentId') : undefined;
    if (attachmentId && this.current.attachDelayMs > 0) this.startTransition(attachmentId, scope, 'attaching', this.current.attachDelayMs, async () => {});
    x.send(reply);
    // The device is on the instance's bus from the start of `attaching`.
    if (attachmentId && eni.MacAddress) this.changes.note({ instanceId, macAddress: eni.MacAddress, deviceIndex, attached: true });
  }

  private async detach(x: Exchange, scope: string): Promise<void> {
    const attachmentId = x.call.params.get('AttachmentId');
    if (!attachmentId) return x.forward();
    const pending = this.activeTransition(attachmentId);
    if (pending) {
      // An attachment mid-transition is in the wrong state for another detach;
      // IncorrectState is EC2's code for that (reference §11), the message is ours.
      return x.send(ec2ErrorReply(400, 'IncorrectState', `The attachment '${attachmentId}' is currently ${pending.status}.`));
    }
    const eni = await this.findEni(x.call, 'attachment.attachment-id', attachmentId);
    if (!eni) return x.forward();
    if (eni.Attachment?.DeviceIndex === 0) {
      // moto only refuses when it is the last NIC; EC2 always refuses index 0.
      return x.send(ec2ErrorReply(400, 'OperationNotPermitted', 'The network interface at device index 0 and networkCard index 0 cannot be detached.'));
    }
    const ended = endedAttachment(eni);
    if (this.current.detachDelayMs <= 0) {
      const reply = await x.fetchUpstream();
      if (reply.status === 200) this.deleteOnTermination.forget(scope, attachmentId);
      x.send(reply);
      if (reply.status === 200 && ended) this.changes.note(ended);
      return;
    }
    // Keep moto attached for the delay, so every check and describe still sees
    // the ENI in use, then detach for real.
    const force = x.call.params.get('Force') === 'true';
    const inspector = this.inspector(x.call);
    this.startTransition(attachmentId, scope, 'detaching', this.current.detachDelayMs, async () => {
      await inspector.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId, Force: force }));
      this.deleteOnTermination.forget(scope, attachmentId);
      if (ended) this.changes.note(ended);
    });
    x.send(ec2ReturnTrueReply('DetachNetworkInterface'));
  }

  private startTransition(attachmentId: string, scope: string, status: TransitionStatus, delayMs: number, complete: () => Promise<void>): void {
    const timer = setTimeout(() => {
      complete()
        // The instance may have gone meanwhile; the transition ends either way.
        .catch(() => undefined)
        .finally(() => {
          if (this.transitions.get(attachmentId)?.timer === timer) this.transitions.delete(attachmentId);
        });
    }, delayMs);
    this.transitions.set(attachmentId, { scope, status, timer });
  }

  private cancelTransition(attachmentId: string): void {
    const pending = this.transitions.get(attachmentId);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.transitions.delete(attachmentId);
  }

  /**
   * CreateTags on an ENI that does not exist: EC2 refuses (and tags nothing), moto tags the id anyway.
   * Only ENI ids are checked; other resources go to moto as they are.
   */
  private async createTags(x: Exchange): Promise<void> {
    const eniIds = [...x.call.params.entries()].filter(([k, v]) => /^ResourceId\.\d+$/.test(k) && v.startsWith('eni-')).map(([, v]) => v);
    if (eniIds.length > 0) {
      const out = await this.inspector(x.call).send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'network-interface-id', Values: eniIds }] }));
      const found = new Set((out.NetworkInterfaces ?? []).map((n) => n.NetworkInterfaceId));
      const missing = eniIds.find((id) => !found.has(id));
      // moto's code and wording for an unknown ENI id.
      if (missing) return x.send(ec2ErrorReply(400, 'InvalidNetworkInterfaceID.NotFound', `The networkInterface ID '${missing}' does not exist`));
    }
    return x.forward();
  }

  /** ModifyNetworkInterfaceAttribute with `Attachment.*`: checked and recorded here, the rest applied by moto. */
  private async modifyAttachment(x: Exchange, scope: string): Promise<void> {
    const p = x.call.params;
    const attachmentId = p.get('Attachment.AttachmentId') ?? '';
    const eniId = p.get('NetworkInterfaceId');
    const rawValue = p.get('Attachment.DeleteOnTermination');
    const value = rawValue === null ? undefined : parseQueryBoolean(rawValue);
    if (rawValue !== null && value === undefined) {
      // EC2's code for a malformed parameter; the message is ours.
      return x.send(ec2ErrorReply(400, 'InvalidParameterValue', `Invalid value '${rawValue}' for Attachment.DeleteOnTermination.`));
    }
    // A missing or unknown ENI id: moto already answers with the right error.
    if (!eniId) return x.forward();
    const eni = await this.findEni(x.call, 'network-interface-id', eniId);
    if (!eni) return x.forward();
    if (eni.Attachment?.AttachmentId !== attachmentId) {
      // The code EC2 (and moto, for DetachNetworkInterface) uses; moto's wording.
      return x.send(ec2ErrorReply(400, 'InvalidAttachmentID.NotFound', `The network interface attachment ID '${attachmentId}' does not exist`));
    }
    const reply = await x.fetchUpstream();
    if (reply.status === 200 && value !== undefined) this.deleteOnTermination.set(scope, attachmentId, value);
    x.send(reply);
  }

  /**
   * moto terminates, then the proxy does what EC2 does with the other attached
   * ENIs (moto leaves them attached to the terminated instance): deletes those
   * whose attachment has DeleteOnTermination, detaches the rest so they become
   * available. The device-index-0 interface is left as moto has it.
   */
  private async terminate(x: Exchange, scope: string): Promise<void> {
    const instanceIds = [...x.call.params.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
    const reply = await x.fetchUpstream();
    if (reply.status !== 200 || instanceIds.length === 0) return x.send(reply);
    const inspector = this.inspector(x.call);
    const attached = await inspector.send(new DescribeNetworkInterfacesCommand({
      Filters: [{ Name: 'attachment.instance-id', Values: instanceIds }],
    }));
    for (const eni of attached.NetworkInterfaces ?? []) {
      const attachmentId = eni.Attachment?.AttachmentId;
      if (!attachmentId || eni.Attachment?.DeviceIndex === 0) continue;
      this.cancelTransition(attachmentId);
      await inspector.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId, Force: true }));
      if (this.deleteOnTermination.get(scope, attachmentId) === true) {
        await inspector.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni.NetworkInterfaceId }));
      }
      this.deleteOnTermination.forget(scope, attachmentId);
      const ended = endedAttachment(eni);
      if (ended) this.changes.note(ended);
    }
    x.send(reply);
  }

  private async delete(x: Exchange): Promise<void> {
    const eniId = x.call.params.get('NetworkInterfaceId');
    if (!eniId) return x.forward();
    const eni = await this.findEni(x.call, 'network-interface-id', eniId);
    if (eni?.Attachment || eni?.Status === 'in-use') return x.send(inUse(eniId));
    return x.forward();
  }

  private async createIdempotently(x: Exchange, scope: string): Promise<void> {
    const token = x.call.params.get('ClientToken');
    if (!token) return x.forward();
    const key = `${scope}|${token}`;
    const fingerprint = requestFingerprint(x.call.params);
    const known = this.tokens.get(key);
    if (known) {
      if (known.fingerprint !== fingerprint) {
        return x.send(ec2ErrorReply(400, 'IdempotentParameterMismatch',
          `The client token '${token}' was already used with different request parameters.`));
      }
      const original = await known.reply;
      if (original) return x.send(original);
      // The original failed, so this request is a fresh attempt (as in EC2).
    }
    const upstream = x.fetchUpstream();
    const reply = upstream.then((r) => (r.status === 200 ? r : undefined), () => undefined);
    const record: TokenRecord = { fingerprint, reply };
    this.tokens.set(key, record);
    let result: Ec2Reply;
    try {
      result = await upstream;
    } finally {
      if ((await reply) === undefined && this.tokens.get(key) === record) this.tokens.delete(key);
    }
    x.send(result);
  }

  private async describeWithOverrides(x: Exchange, scope: string): Promise<void> {
    const overrides = new Map<string, AttachmentOverride>();
    for (const [attachmentId, t] of this.transitions) if (t.scope === scope) overrides.set(attachmentId, { status: t.status });
    for (const [attachmentId, value] of this.deleteOnTermination.inScope(scope)) {
      overrides.set(attachmentId, { ...overrides.get(attachmentId), deleteOnTermination: value });
    }
    const p = x.call.params;
    const page = this.current.paginate && x.call.action === 'DescribeNetworkInterfaces' && p.has('MaxResults')
      ? { max: Number(p.get('MaxResults')), after: p.get('NextToken') ?? undefined }
      : undefined;
    if (overrides.size === 0 && !page) return x.forward();
    const reply = await x.fetchUpstream();
    if (reply.status !== 200) return x.send(reply);
    let body = reply.body.toString();
    if (overrides.size > 0) body = rewriteAttachments(body, overrides);
    if (page) body = pageNetworkInterfaces(body, page.max, page.after);
    x.send({ ...reply, body: Buffer.from(body) });
  }
}

/** The change that ends `eni`'s current attachment, when it has one to end. */
function endedAttachment(eni: NetworkInterface): AttachmentChange | undefined {
  const { InstanceId: instanceId, DeviceIndex: deviceIndex } = eni.Attachment ?? {};
  return instanceId && eni.MacAddress && deviceIndex !== undefined ? { instanceId, macAddress: eni.MacAddress, deviceIndex, attached: false } : undefined;
}

/** A Query API boolean as EC2 accepts it; undefined when it is not one. */
function parseQueryBoolean(raw: string): boolean | undefined {
  const lower = raw.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

/** Every parameter except the token itself, in a stable order. */
function requestFingerprint(params: URLSearchParams): string {
  return [...params.entries()]
    .filter(([k]) => k !== 'ClientToken')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}
