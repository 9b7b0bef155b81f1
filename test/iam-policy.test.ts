// The IAM policy we ship for the control worker (deploy/iam/nodeeni-controller-policy.json)
// is checked against the code on every build:
//  - a real IAM policy validator (moto's, from the project's venv) accepts it, and rejects a
//    document whose actions lack the "ec2:" prefix (the old prose list in the manifest);
//  - it allows exactly the EC2 actions the code calls (activities/ec2/*.ts), no more;
//  - the mutating actions are allowed only on ENIs carrying our managed-by tag (or, at
//    creation, only when the request carries it), and CreateTags only at creation, for
//    the leaked marker on our own ENIs, or to adopt the Go controller's ENIs (ours only
//    when they carry its tag and not ours yet, with exactly the keys the adoption writes);
//  - every statement names resource types AWS authorizes for its actions, and every resource
//    type our calls put in the request is covered (else the call fails UnauthorizedOperation).
// Nothing here needs the backends the global setup starts.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { GO_CONTROLLER_MANAGED_BY_VALUE, GO_CONTROLLER_TAG, MANAGED_BY_VALUE, TAG } from '../common/names.js';
import { PROJECT_ROOT, TOOL, requireTool } from '../sandbox/backends/tools.js';

const POLICY_PATH = path.join(PROJECT_ROOT, 'deploy', 'iam', 'nodeeni-controller-policy.json');
const EC2_ACTIVITIES_DIR = path.join(PROJECT_ROOT, 'activities', 'ec2');
/** The venv scripts/ensure-tools.sh installs moto into (the same one moto_server runs from). */
const VENV_PYTHON = path.join(path.dirname(TOOL.motoServer), 'python');

type ConditionBlock = Record<string, Record<string, string | string[]>>;
interface Statement {
  Sid?: string;
  Effect: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: ConditionBlock;
}
interface PolicyDocument {
  Version: string;
  Statement: Statement[];
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const policyText = readFileSync(POLICY_PATH, 'utf8');
const policy = JSON.parse(policyText) as PolicyDocument;
const statements = list(policy.Statement);
const allows = statements.filter((s) => s.Effect === 'Allow');
const label = (s: Statement) => s.Sid ?? JSON.stringify(s.Action);

/** "arn:aws:ec2:*:*:network-interface/*" -> "network-interface"; "*" -> "*". */
function resourceType(arn: string): string {
  if (arn === '*') return '*';
  const m = /^arn:[^:]+:ec2:[^:]*:[^:]*:([a-z0-9-]+)\//.exec(arn);
  if (!m) throw new Error(`resource ${arn} is not an EC2 ARN with a resource type`);
  return m[1]!;
}

function statementsAllowing(action: string): Statement[] {
  return allows.filter((s) => list(s.Action).includes(action));
}

function condition(s: Statement, operator: string, key: string): string[] | undefined {
  const v = s.Condition?.[operator]?.[key];
  return v === undefined ? undefined : list(v);
}

// ---------------------------------------------------------------------------
// What the code calls

/** Every `new XxxCommand(` and `paginateXxx(` of @aws-sdk/client-ec2 in activities/ec2, as `ec2:Xxx`, with the files. */
function ec2ActionsCalled(): Map<string, string[]> {
  const called = new Map<string, string[]>();
  for (const name of readdirSync(EC2_ACTIVITIES_DIR).filter((f) => f.endsWith('.ts')).sort()) {
    const src = readFileSync(path.join(EC2_ACTIVITIES_DIR, name), 'utf8');
    const imported = ec2Imports(src, name);
    for (const m of src.matchAll(/\bnew\s+(\w+)\s*\(/g)) {
      const original = imported.get(m[1]!);
      if (!original?.endsWith('Command')) continue;
      const action = `ec2:${original.slice(0, -'Command'.length)}`;
      called.set(action, [...new Set([...(called.get(action) ?? []), `activities/ec2/${name}`])]);
    }
    for (const m of src.matchAll(/\b(\w+)\s*\(/g)) {
      const original = imported.get(m[1]!);
      if (!original?.startsWith('paginate')) continue;
      const action = `ec2:${original.slice('paginate'.length)}`;
      called.set(action, [...new Set([...(called.get(action) ?? []), `activities/ec2/${name}`])]);
    }
  }
  return called;
}

/** Local name -> exported name of the value imports from @aws-sdk/client-ec2. */
function ec2Imports(src: string, file: string): Map<string, string> {
  if (/import\s+\*\s+as\s+\w+\s+from\s+['"]@aws-sdk\/client-ec2['"]/.test(src)) {
    throw new Error(`${file}: a namespace import of @aws-sdk/client-ec2 would hide its commands from this check; import them by name`);
  }
  const out = new Map<string, string>();
  for (const m of src.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*['"]@aws-sdk\/client-ec2['"]/g)) {
    if (m[1]) continue; // `import type { ... }` brings no commands
    for (const part of m[2]!.split(',').map((p) => p.trim()).filter(Boolean)) {
      if (part.startsWith('type ')) continue;
      const [exported, local] = part.split(/\s+as\s+/);
      out.set((local ?? exported)!.trim(), exported!.trim());
    }
  }
  return out;
}

/** `Key: TAG.x` / `Key: 'literal'` expressions in a piece of source, as tag keys. */
function tagKeysIn(src: string, where: string): string[] {
  const keys: string[] = [];
  for (const m of src.matchAll(/\bKey:\s*([^,}\n]+)/g)) {
    const expr = m[1]!.trim();
    const fromTag = /^TAG\.(\w+)$/.exec(expr);
    const literal = /^'([^']*)'$/.exec(expr);
    if (fromTag && fromTag[1]! in TAG) keys.push(TAG[fromTag[1]! as keyof typeof TAG]);
    else if (literal) keys.push(literal[1]!);
    else throw new Error(`${where}: cannot read the tag key expression "Key: ${expr}" (use a TAG constant or a string literal)`);
  }
  return keys;
}

/** The source of every `new <command>(...)` call (balanced parentheses). */
function callSources(src: string, command: string): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(new RegExp(`\\bnew\\s+${command}\\s*\\(`, 'g'))) {
    let depth = 0;
    for (let i = m.index + m[0].length - 1; i < src.length; i++) {
      if (src[i] === '(') depth++;
      else if (src[i] === ')' && --depth === 0) {
        out.push(src.slice(m.index, i + 1));
        break;
      }
    }
  }
  return out;
}

/** The source of `function name(...) { ... }` (balanced braces from its body). */
function functionSource(src: string, name: string, where: string): string {
  const m = new RegExp(`\\bfunction\\s+${name}\\s*\\(`).exec(src);
  if (!m) throw new Error(`${where}: spreads ...${name}(), but no function ${name} is declared in the file`);
  const open = src.indexOf('{', src.indexOf(')', m.index) + 1);
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === '{') depth++;
    else if (src[i] === '}' && --depth === 0) return src.slice(m.index, i + 1);
  }
  throw new Error(`${where}: function ${name} has unbalanced braces`);
}

/** Tag keys the code writes: at creation (TagSpecifications) and later (each CreateTags call's keys, with the helpers it spreads). */
function tagKeysWritten(): { atCreation: string[]; laterCalls: string[][] } {
  const file = path.join(EC2_ACTIVITIES_DIR, 'ec2-activities.ts');
  const src = readFileSync(file, 'utf8');
  const calls = callSources(src, 'CreateTagsCommand');
  const outside = calls.reduce((rest, c) => rest.replace(c, ''), src);
  const atCreation = tagKeysIn(outside, 'activities/ec2/ec2-activities.ts');
  const laterCalls = calls.map((c) => {
    const spread = [...c.matchAll(/\.\.\.(\w+)\(/g)].flatMap((m) => tagKeysIn(functionSource(src, m[1]!, 'CreateTagsCommand call'), `function ${m[1]}`));
    return [...new Set([...tagKeysIn(c, 'CreateTagsCommand call'), ...spread])].sort();
  });
  return { atCreation: [...new Set(atCreation)].sort(), laterCalls };
}

// ---------------------------------------------------------------------------
// What AWS authorizes (Service Authorization Reference, "Actions, resources, and condition
// keys for Amazon EC2"): `documented` = the resource types the action authorizes at all,
// `needed` = those our calls put in the request (so some statement must allow each).
// CreateNetworkInterface: network-interface* and subnet* required, security-group when
// Groups are given (we always give them). ModifyNetworkInterfaceAttribute: network-interface*
// required; security-group when Groups change (ensureEni), instance when the attachment's
// DeleteOnTermination changes (setDeleteOnTermination). Attach/Detach: instance* and
// network-interface*. CreateTags: we tag only network interfaces. Describe*: no resource
// types, so only "*".
const RESOURCE_TYPES: Record<string, { documented: string[]; needed: string[] }> = {
  'ec2:DescribeInstanceTypes': { documented: ['*'], needed: ['*'] },
  'ec2:DescribeInstances': { documented: ['*'], needed: ['*'] },
  'ec2:DescribeNetworkInterfaces': { documented: ['*'], needed: ['*'] },
  'ec2:DescribeSecurityGroups': { documented: ['*'], needed: ['*'] },
  'ec2:DescribeSubnets': { documented: ['*'], needed: ['*'] },
  'ec2:CreateNetworkInterface': { documented: ['network-interface', 'subnet', 'security-group'], needed: ['network-interface', 'subnet', 'security-group'] },
  'ec2:CreateTags': { documented: ['network-interface'], needed: ['network-interface'] },
  'ec2:AttachNetworkInterface': { documented: ['instance', 'network-interface'], needed: ['instance', 'network-interface'] },
  'ec2:DetachNetworkInterface': { documented: ['instance', 'network-interface'], needed: ['instance', 'network-interface'] },
  'ec2:DeleteNetworkInterface': { documented: ['network-interface'], needed: ['network-interface'] },
  'ec2:ModifyNetworkInterfaceAttribute': {
    documented: ['instance', 'network-interface', 'security-group', 'subnet'],
    needed: ['instance', 'network-interface', 'security-group'],
  },
};

const ENI_LIFECYCLE = ['ec2:AttachNetworkInterface', 'ec2:DetachNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:ModifyNetworkInterfaceAttribute'];
const MANAGED_BY_RESOURCE_TAG = `aws:ResourceTag/${TAG.managedBy}`;
const MANAGED_BY_REQUEST_TAG = `aws:RequestTag/${TAG.managedBy}`;
const GO_MANAGED_BY_RESOURCE_TAG = `aws:ResourceTag/${GO_CONTROLLER_TAG.managedBy}`;

// ---------------------------------------------------------------------------
// The validator

const VALIDATE_PY = `
import json, sys
from moto.iam.policy_validation import IAMPolicyDocumentValidator
with open(sys.argv[1]) as f:
    document = f.read()
try:
    IAMPolicyDocumentValidator(document).validate()
except Exception as e:
    print(json.dumps({"valid": False, "code": getattr(e, "code", type(e).__name__), "message": getattr(e, "message", str(e))}))
else:
    print(json.dumps({"valid": True}))
`;

interface Verdict {
  valid: boolean;
  code?: string;
  message?: string;
}

async function validatePolicyFile(file: string): Promise<Verdict> {
  const { stdout } = await promisify(execFile)(requireTool(VENV_PYTHON), ['-c', VALIDATE_PY, file], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Verdict;
}

async function validatePolicyDocument(doc: unknown): Promise<Verdict> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nodeeni-iam-'));
  try {
    const file = path.join(dir, 'policy.json');
    await writeFile(file, JSON.stringify(doc, null, 2));
    return await validatePolicyFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------

describe('IAM policy of the control worker (deploy/iam/nodeeni-controller-policy.json)', () => {
  it('is accepted by the IAM policy validator (moto IAMPolicyDocumentValidator)', async () => {
    const verdict = await validatePolicyFile(POLICY_PATH);
    expect(verdict, `the validator rejected ${path.relative(PROJECT_ROOT, POLICY_PATH)}: ${verdict.message}`).toEqual({ valid: true });
  });

  it('negative control: the same validator rejects the old prose list (actions without the ec2: prefix)', async () => {
    // As deploy/manifests/20-controller.yaml used to list them: only the first one prefixed.
    const prose =
      'ec2:CreateNetworkInterface, DeleteNetworkInterface, AttachNetworkInterface, DetachNetworkInterface, ' +
      'ModifyNetworkInterfaceAttribute, DescribeNetworkInterfaces, DescribeInstances, ' +
      'DescribeInstanceTypes, DescribeSubnets, DescribeSecurityGroups, CreateTags';
    const fromProse = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: prose.split(/,\s*/), Resource: '*' }] };
    const verdict = await validatePolicyDocument(fromProse);
    expect(verdict.valid, 'a document with unprefixed actions must be rejected').toBe(false);
    expect(verdict.code).toBe('MalformedPolicyDocument');
    expect(verdict.message).toMatch(/prefaced by a vendor/);

    // And our own document with one prefix dropped.
    const broken = structuredClone(policy);
    const lifecycle = broken.Statement.find((s) => list(s.Action).includes('ec2:DeleteNetworkInterface'))!;
    lifecycle.Action = list(lifecycle.Action).map((a) => (a === 'ec2:DeleteNetworkInterface' ? 'DeleteNetworkInterface' : a));
    const brokenVerdict = await validatePolicyDocument(broken);
    expect(brokenVerdict.valid).toBe(false);
    expect(brokenVerdict.message).toMatch(/prefaced by a vendor/);
  });

  it('has the expected shape: version 2012-10-17, unique Sids, only Allow, no wildcards or Not* elements', () => {
    expect(policy.Version).toBe('2012-10-17');
    const sids = statements.map((s) => s.Sid);
    expect(sids.every((s) => typeof s === 'string' && s.length > 0), 'every statement has a Sid').toBe(true);
    expect(new Set(sids).size, 'Sids are unique').toBe(sids.length);
    for (const s of statements) {
      expect(s.Effect, `${label(s)}: only Allow statements are expected`).toBe('Allow');
      expect(s.NotAction, `${label(s)}: NotAction grants everything else`).toBeUndefined();
      expect(s.NotResource, `${label(s)}: NotResource grants everything else`).toBeUndefined();
      for (const a of list(s.Action)) {
        expect(a, `${label(s)}: action ${a} must be one exact ec2: action, no wildcard`).toMatch(/^ec2:[A-Za-z]+$/);
      }
    }
  });

  it('allows every EC2 action the code calls, and nothing the code does not call', () => {
    const called = ec2ActionsCalled();
    expect(called.size, 'found no EC2 commands in activities/ec2; the parser is broken').toBeGreaterThan(0);
    const allowed = new Set(allows.flatMap((s) => list(s.Action)));

    const missing = [...called].filter(([a]) => !allowed.has(a)).map(([a, files]) => `${a} (called in ${files.join(', ')})`);
    expect(missing, `the code calls EC2 actions the policy does not allow; add them to ${path.relative(PROJECT_ROOT, POLICY_PATH)}:\n  ${missing.join('\n  ')}`).toEqual([]);

    const extra = [...allowed].filter((a) => !called.has(a)).sort();
    expect(extra, `the policy allows EC2 actions the code never calls (least privilege: remove them):\n  ${extra.join('\n  ')}`).toEqual([]);

    const undocumented = [...called.keys()].filter((a) => !(a in RESOURCE_TYPES)).sort();
    expect(undocumented, `look up the resource types of these actions in the EC2 Service Authorization Reference and add them to RESOURCE_TYPES in this test: ${undocumented.join(', ')}`).toEqual([]);
  });

  it('the EC2 commands the control worker sends are all in activities/ec2 (so the check above sees them)', () => {
    const outside: string[] = [];
    for (const dir of ['activities', 'workflows', 'workers', 'watcher', 'cli', 'common', 'host']) {
      const root = path.join(PROJECT_ROOT, dir);
      for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
        if (!e.isFile() || !e.name.endsWith('.ts')) continue;
        const file = path.relative(PROJECT_ROOT, path.join(e.parentPath, e.name));
        if (file.startsWith(`activities${path.sep}ec2${path.sep}`)) continue;
        const src = readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
        const commands = [...ec2Imports(src, file).values()].filter((n) => n.endsWith('Command'));
        if (commands.length > 0) outside.push(`${file}: ${commands.join(', ')}`);
      }
    }
    expect(outside, `EC2 commands imported outside activities/ec2 escape the IAM check:\n  ${outside.join('\n  ')}`).toEqual([]);
  });

  it('read actions are on "*" only; every other action names resource ARNs, never "*"', () => {
    for (const s of allows) {
      for (const a of list(s.Action)) {
        const resources = list(s.Resource);
        if (/^ec2:Describe/.test(a)) expect(resources, `${label(s)}: ${a} supports no resource-level permissions`).toEqual(['*']);
        else expect(resources, `${label(s)}: ${a} must not be allowed on "*"`).not.toContain('*');
      }
    }
  });

  it('names only resource types AWS authorizes for each action, and covers every type our calls need', () => {
    const problems: string[] = [];
    for (const [action, types] of Object.entries(RESOURCE_TYPES)) {
      const covering = statementsAllowing(action);
      for (const s of covering) {
        for (const r of list(s.Resource)) {
          const t = resourceType(r);
          if (!types.documented.includes(t)) problems.push(`${label(s)}: ${action} does not authorize resource type ${t} (${r})`);
        }
      }
      for (const t of types.needed) {
        if (!covering.some((s) => list(s.Resource).map(resourceType).includes(t))) {
          problems.push(`${action}: no statement allows it on resource type ${t}, which the request authorizes; the call would fail with UnauthorizedOperation`);
        }
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('Attach/Detach/Delete/Modify of network interfaces only on ENIs tagged managed-by=nodeeni-controller', () => {
    for (const action of ENI_LIFECYCLE) {
      const covering = statementsAllowing(action);
      expect(covering.length, `${action} is not allowed at all`).toBeGreaterThan(0);
      for (const s of covering) {
        const types = list(s.Resource).map(resourceType);
        const tagged = condition(s, 'StringEquals', MANAGED_BY_RESOURCE_TAG);
        if (types.includes('network-interface') || types.includes('*')) {
          expect(tagged, `${label(s)}: ${action} on network interfaces needs StringEquals ${MANAGED_BY_RESOURCE_TAG} = ${MANAGED_BY_VALUE}`).toEqual([MANAGED_BY_VALUE]);
        } else {
          // Without the tag condition only the other resource types of the same request
          // (the instance, the security groups): the ENI itself still has to pass the tagged statement.
          expect(types.every((t) => ['instance', 'security-group', 'subnet'].includes(t)), `${label(s)}: ${action} without ${MANAGED_BY_RESOURCE_TAG} on ${types.join(', ')}`).toBe(true);
        }
      }
    }
  });

  it('CreateNetworkInterface only when the request tags the ENI managed-by=nodeeni-controller, with only the keys the code writes', () => {
    const { atCreation } = tagKeysWritten();
    expect(atCreation, 'the code writes the managed-by tag at creation').toContain(TAG.managedBy);
    const covering = statementsAllowing('ec2:CreateNetworkInterface');
    expect(covering.length).toBeGreaterThan(0);
    for (const s of covering) {
      const types = list(s.Resource).map(resourceType);
      if (types.includes('network-interface') || types.includes('*')) {
        expect(types, `${label(s)}: keep the tag-conditioned ENI statement to network-interface`).toEqual(['network-interface']);
        expect(condition(s, 'StringEquals', MANAGED_BY_REQUEST_TAG), `${label(s)}: needs StringEquals ${MANAGED_BY_REQUEST_TAG} = ${MANAGED_BY_VALUE}`).toEqual([MANAGED_BY_VALUE]);
        const keys = condition(s, 'ForAllValues:StringEquals', 'aws:TagKeys');
        expect(keys, `${label(s)}: needs ForAllValues:StringEquals aws:TagKeys`).toBeDefined();
        expect([...keys!].sort(), `${label(s)}: aws:TagKeys must be exactly the keys ensureEni writes (TagSpecifications)`).toEqual(atCreation);
      } else {
        expect(types.every((t) => ['subnet', 'security-group'].includes(t)), `${label(s)}: CreateNetworkInterface without ${MANAGED_BY_REQUEST_TAG} only on subnets and security groups, not ${types.join(', ')}`).toBe(true);
      }
    }
  });

  it('CreateTags only at creation of an ENI, for the leaked marker alone on our own ENIs, or to adopt the Go controller\'s ENIs', () => {
    const { laterCalls } = tagKeysWritten();
    const leakedCalls = laterCalls.filter((keys) => keys.length === 1 && keys[0] === TAG.leaked);
    const adoptCalls = laterCalls.filter((keys) => keys.includes(TAG.adoptedFrom));
    expect(leakedCalls.length, 'the code writes the leaked marker alone after creation').toBeGreaterThan(0);
    expect(adoptCalls.length, 'the code adopts the Go controller\'s ENIs with one CreateTags').toBe(1);
    expect(leakedCalls.length + adoptCalls.length, `after creation only the leaked marker or the adoption tags: ${JSON.stringify(laterCalls)}`).toBe(laterCalls.length);
    const adoptKeys = adoptCalls[0]!;
    expect(adoptKeys, 'adoption writes our managed-by tag (so the lifecycle statements then cover the ENI)').toContain(TAG.managedBy);

    const covering = statementsAllowing('ec2:CreateTags');
    const atCreation = covering.filter((s) => condition(s, 'StringEquals', 'ec2:CreateAction') !== undefined);
    const adopt = covering.filter((s) => condition(s, 'StringEquals', GO_MANAGED_BY_RESOURCE_TAG) !== undefined);
    const leaked = covering.filter((s) => !atCreation.includes(s) && !adopt.includes(s));
    expect(atCreation.length, 'a statement allows tagging at creation (CreateNetworkInterface TagSpecifications)').toBeGreaterThan(0);
    expect(leaked.length, 'a statement allows the leaked marker').toBeGreaterThan(0);
    expect(adopt.length, 'a statement allows adopting the Go controller\'s ENIs').toBe(1);
    for (const s of covering) {
      expect(list(s.Resource).map(resourceType), `${label(s)}: CreateTags only on network interfaces`).toEqual(['network-interface']);
    }
    for (const s of atCreation) {
      expect(condition(s, 'StringEquals', 'ec2:CreateAction'), `${label(s)}: only as part of CreateNetworkInterface`).toEqual(['CreateNetworkInterface']);
    }
    for (const s of leaked) {
      expect(condition(s, 'ForAllValues:StringEquals', 'aws:TagKeys'), `${label(s)}: after creation only the key ${TAG.leaked}`).toEqual([TAG.leaked]);
      expect(condition(s, 'Null', 'aws:TagKeys'), `${label(s)}: ForAllValues on an empty key set is true; require keys with Null aws:TagKeys = false`).toEqual(['false']);
      expect(condition(s, 'StringEquals', MANAGED_BY_RESOURCE_TAG), `${label(s)}: only on ENIs tagged ${TAG.managedBy} = ${MANAGED_BY_VALUE}`).toEqual([MANAGED_BY_VALUE]);
    }
    for (const s of adopt) {
      expect([...condition(s, 'ForAllValues:StringEquals', 'aws:TagKeys')!].sort(), `${label(s)}: exactly the keys adoptGoControllerEni writes`).toEqual(adoptKeys);
      expect(condition(s, 'Null', 'aws:TagKeys'), `${label(s)}: require keys with Null aws:TagKeys = false`).toEqual(['false']);
      expect(condition(s, 'StringEquals', GO_MANAGED_BY_RESOURCE_TAG), `${label(s)}: only on ENIs the Go controller tagged`).toEqual([GO_CONTROLLER_MANAGED_BY_VALUE]);
      expect(condition(s, 'Null', MANAGED_BY_RESOURCE_TAG), `${label(s)}: never on an ENI that already carries our managed-by tag (ours, or another cluster's)`).toEqual(['true']);
      expect(condition(s, 'StringEquals', MANAGED_BY_REQUEST_TAG), `${label(s)}: the request tags it ${TAG.managedBy} = ${MANAGED_BY_VALUE}`).toEqual([MANAGED_BY_VALUE]);
    }
  });

  it('the controller manifest points to the policy instead of listing actions in prose', () => {
    const manifest = readFileSync(path.join(PROJECT_ROOT, 'deploy', 'manifests', '20-controller.yaml'), 'utf8');
    expect(manifest).toContain('deploy/iam/nodeeni-controller-policy.json');
    expect(manifest, 'the action list lives in the policy document only').not.toMatch(/DescribeInstanceTypes|ModifyNetworkInterfaceAttribute/);
  });
});
