// The few pieces of EC2 Query-protocol XML the fault proxy writes or rewrites.
import { randomUUID } from 'node:crypto';

const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

/** A reply the proxy sends to the client, either built here or buffered from moto. */
export interface Ec2Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);
}

function xmlReply(status: number, xml: string, requestId: string): Ec2Reply {
  return {
    status,
    headers: { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId },
    body: Buffer.from(xml),
  };
}

/** The body real EC2 sends with an error (same shape moto uses). */
export function ec2ErrorReply(status: number, code: string, message: string): Ec2Reply {
  const requestId = randomUUID();
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors>` +
    `<RequestID>${requestId}</RequestID></Response>`;
  return xmlReply(status, xml, requestId);
}

/** A successful `<Action>Response` carrying only `<return>true</return>`. */
export function ec2ReturnTrueReply(action: string): Ec2Reply {
  const requestId = randomUUID();
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId><return>true</return></${action}Response>`;
  return xmlReply(200, xml, requestId);
}

/** Text of the first `<tag>` element, for flat values such as attachmentId. */
export function firstTagText(xml: string, tag: string): string | undefined {
  return new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
}

/** What the proxy changes in one ENI `<attachment>` element; absent fields stay as moto wrote them. */
export interface AttachmentOverride {
  status?: string;
  deleteOnTermination?: boolean;
}

function setTagText(xml: string, tag: string, text: string, insertAfter: string): string {
  const existing = new RegExp(`<${tag}>[^<]*</${tag}>`);
  if (existing.test(xml)) return xml.replace(existing, `<${tag}>${text}</${tag}>`);
  return xml.replace(new RegExp(`(</${insertAfter}>)`), `$1<${tag}>${text}</${tag}>`);
}

/**
 * Applies `overrides` to every `<attachment>` element whose attachmentId they
 * name. ENI attachments never nest another `<attachment>`, and EBS statuses
 * and deleteOnTermination live under `<ebs>`, so a non-greedy match per element is exact.
 */
export function rewriteAttachments(xml: string, overrides: ReadonlyMap<string, AttachmentOverride>): string {
  return xml.replace(/<attachment>([\s\S]*?)<\/attachment>/g, (whole, inner: string) => {
    const id = firstTagText(inner, 'attachmentId');
    const override = id === undefined ? undefined : overrides.get(id);
    if (override === undefined) return whole;
    let rewritten = inner;
    if (override.status !== undefined) rewritten = setTagText(rewritten, 'status', override.status, 'attachmentId');
    if (override.deleteOnTermination !== undefined) {
      rewritten = setTagText(rewritten, 'deleteOnTermination', String(override.deleteOnTermination), 'attachmentId');
    }
    return `<attachment>${rewritten}</attachment>`;
  });
}

/** The `<item>` elements directly inside `body` (nested lists, such as an ENI's tagSet, have items of their own). */
function topLevelItems(body: string): string[] {
  const items: string[] = [];
  const tags = /<(\/?)item>/g;
  let depth = 0;
  let start = -1;
  for (let m = tags.exec(body); m; m = tags.exec(body)) {
    if (m[1] === '') {
      if (depth++ === 0) start = m.index;
    } else if (--depth === 0) {
      items.push(body.slice(start, m.index + m[0].length));
    }
  }
  return items;
}

/**
 * One page of a DescribeNetworkInterfaces reply, the way EC2 pages it (moto
 * answers everything at once): at most `max` ENIs, those after the ENI the
 * token names, in ENI-ID order, so ENIs deleted between two pages make the
 * next page skip none; a `<nextToken>` when more follow.
 */
export function pageNetworkInterfaces(xml: string, max: number, after: string | undefined): string {
  const open = '<networkInterfaceSet>';
  const close = '</networkInterfaceSet>';
  const start = xml.indexOf(open);
  const end = xml.lastIndexOf(close);
  if (start < 0 || end < start) return xml;
  const items = topLevelItems(xml.slice(start + open.length, end))
    .map((item) => ({ id: firstTagText(item, 'networkInterfaceId') ?? '', item }))
    .sort((a, b) => a.id.localeCompare(b.id));
  const rest = after === undefined ? items : items.filter((i) => i.id.localeCompare(after) > 0);
  const page = rest.slice(0, max);
  const token = rest.length > max ? `<nextToken>${escapeXml(page[page.length - 1]!.id)}</nextToken>` : '';
  return `${xml.slice(0, start + open.length)}${page.map((i) => i.item).join('')}${close}${token}${xml.slice(end + close.length)}`;
}
