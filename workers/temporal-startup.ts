// Start-up checks against Temporal, run by every component after it connected
// and before it starts its work: the namespace exists, and the custom search
// attributes the code uses are registered with the right types. In a fresh
// namespace the watcher used to log one error per start attempt while no
// entity ever ran; now the component stops at once, saying what to run.
import type { Logger, SearchAttributeType } from '@temporalio/common';
import { TypedSearchAttributes } from '@temporalio/common';
// Exported by the SDK for registering search attributes.
import { _ as decodeIndexedValueType, encodeSearchAttributeIndexedValueType, type SearchAttributeKey } from '@temporalio/common/lib/search-attributes.js';
import type { temporal } from '@temporalio/proto';
import type { Connection } from '@temporalio/client';
import { TemporalStartupError, connectClient, type TemporalSettings } from './temporal-connection.js';

/** What both NativeConnection (workers) and Connection (clients) offer. */
export interface TemporalServices {
  workflowService: Pick<temporal.api.workflowservice.v1.WorkflowService, 'describeNamespace'>;
  operatorService: Pick<temporal.api.operatorservice.v1.OperatorService, 'listSearchAttributes' | 'addSearchAttributes'>;
}

export interface StartupCheckOptions {
  address: string;
  namespace: string;
  /** The custom search attributes this component relies on; none: not checked. */
  searchAttributes?: readonly SearchAttributeKey<SearchAttributeType>[];
  /** Register the missing ones (the control worker with TEMPORAL_CREATE_SEARCH_ATTRIBUTES=true). */
  createMissing?: boolean;
  /** Appended to the "missing" line: how this component could create them itself. */
  createHint?: string;
  logger?: Logger;
}

const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const UNIMPLEMENTED = 12;
const UNAUTHENTICATED = 16;
const NAMESPACE_STATE_DELETED = 3;

function codeOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function accessProblem(err: unknown, what: string): string | undefined {
  const code = codeOf(err);
  if (code === PERMISSION_DENIED) return `not allowed to ${what} (${messageOf(err)}): the API key or client certificate lacks that permission on the namespace`;
  if (code === UNAUTHENTICATED) return `not authenticated to ${what} (${messageOf(err)}): check TEMPORAL_API_KEY / TEMPORAL_API_KEY_FILE or the client certificate`;
  return undefined;
}

function typeName(type: SearchAttributeType): string {
  return TypedSearchAttributes.toMetadataType(type);
}

function indexedType(key: SearchAttributeKey<SearchAttributeType>): temporal.api.enums.v1.IndexedValueType {
  const t = encodeSearchAttributeIndexedValueType(key.type);
  if (t === undefined) throw new Error(`no indexed value type for ${key.name} (${key.type})`);
  return t;
}

function registeredTypeName(value: temporal.api.enums.v1.IndexedValueType | null | undefined): string {
  const t = decodeIndexedValueType(value);
  return t ? typeName(t) : `unknown (${String(value)})`;
}

/**
 * The `temporal` CLI command that registers these attributes: one `--name N --type T`
 * pair per attribute (the CLI pairs them by position; several names with one type
 * create only the first).
 */
export function createSearchAttributesCommand(keys: readonly SearchAttributeKey<SearchAttributeType>[], o: { address: string; namespace: string }): string {
  return ['temporal operator search-attribute create', '--address', o.address, '--namespace', o.namespace, ...keys.flatMap((k) => ['--name', k.name, '--type', typeName(k.type)])].join(' ');
}

/** Temporal Cloud manages search attributes outside the namespace's own API (tcld, the UI, the Cloud Ops API). */
export function isTemporalCloud(address: string): boolean {
  return /\.tmprl\.cloud(:\d+)?$/i.test(address);
}

/** How an operator registers them: the temporal CLI, or Temporal Cloud's tools. */
export function searchAttributesFix(keys: readonly SearchAttributeKey<SearchAttributeType>[], o: { address: string; namespace: string }): string {
  if (isTemporalCloud(o.address)) {
    return `create them in Temporal Cloud (tcld namespace search-attributes add, the Cloud UI or the Cloud Ops API): ${keys.map((k) => `${k.name}=${typeName(k.type)}`).join(' ')}`;
  }
  return `create them with: ${createSearchAttributesCommand(keys, o)}`;
}

async function checkNamespace(conn: TemporalServices, o: StartupCheckOptions): Promise<string | undefined> {
  try {
    const res = await conn.workflowService.describeNamespace({ namespace: o.namespace });
    if (res.namespaceInfo?.state === NAMESPACE_STATE_DELETED) return `namespace "${o.namespace}" on Temporal at ${o.address} is being deleted: set TEMPORAL_NAMESPACE to a live namespace`;
    return undefined;
  } catch (err) {
    if (codeOf(err) === NOT_FOUND) {
      return `namespace "${o.namespace}" does not exist on Temporal at ${o.address}: set TEMPORAL_NAMESPACE, or create it (temporal operator namespace create --address ${o.address} --namespace ${o.namespace})`;
    }
    return accessProblem(err, `describe namespace "${o.namespace}"`) ?? `cannot describe namespace "${o.namespace}" on Temporal at ${o.address}: ${messageOf(err)}`;
  }
}

async function listCustom(conn: TemporalServices, namespace: string): Promise<Record<string, temporal.api.enums.v1.IndexedValueType>> {
  const res = await conn.operatorService.listSearchAttributes({ namespace });
  return (res.customAttributes ?? {}) as Record<string, temporal.api.enums.v1.IndexedValueType>;
}

async function checkSearchAttributes(conn: TemporalServices, o: StartupCheckOptions): Promise<string[]> {
  const needed = o.searchAttributes ?? [];
  if (needed.length === 0) return [];
  let existing: Record<string, temporal.api.enums.v1.IndexedValueType>;
  try {
    existing = await listCustom(conn, o.namespace);
  } catch (err) {
    const code = codeOf(err);
    if (code === PERMISSION_DENIED || code === UNIMPLEMENTED) {
      // A least-privilege role may not list them (older default authorizers allowed it to namespace admins only):
      // that is no proof they are missing, so say so and go on.
      o.logger?.warn(
        `cannot check the custom search attributes of namespace "${o.namespace}" (${messageOf(err)}); continuing — make sure these exist: ${needed.map((k) => `${k.name} (${typeName(k.type)})`).join(', ')}`,
      );
      return [];
    }
    return [accessProblem(err, `list the search attributes of namespace "${o.namespace}"`) ?? `cannot list the search attributes of namespace "${o.namespace}": ${messageOf(err)}`];
  }
  const problems: string[] = [];
  for (const k of needed) {
    if (k.name in existing && existing[k.name] !== indexedType(k)) {
      problems.push(
        `search attribute ${k.name} in namespace "${o.namespace}" has type ${registeredTypeName(existing[k.name])}, the code needs ${typeName(k.type)}: ` +
          `a type cannot be changed in place (temporal operator search-attribute remove --address ${o.address} --namespace ${o.namespace} --name ${k.name}, then create it again)`,
      );
    }
  }
  const missing = needed.filter((k) => !(k.name in existing));
  if (missing.length === 0) return problems;
  const names = missing.map((k) => `${k.name} (${typeName(k.type)})`).join(', ');
  const fix = searchAttributesFix(missing, o);
  if (!o.createMissing) {
    problems.push(`missing custom search attributes in namespace "${o.namespace}": ${names} — ${fix}${o.createHint && !isTemporalCloud(o.address) ? ` ${o.createHint}` : ''}`);
    return problems;
  }
  try {
    await conn.operatorService.addSearchAttributes({ namespace: o.namespace, searchAttributes: Object.fromEntries(missing.map((k) => [k.name, indexedType(k)])) });
    const after = await listCustom(conn, o.namespace);
    const still = missing.filter((k) => !(k.name in after));
    if (still.length > 0) throw new Error(`still missing after creating them: ${still.map((k) => k.name).join(', ')}`);
    o.logger?.info('created custom search attributes', { namespace: o.namespace, searchAttributes: missing.map((k) => k.name) });
  } catch (err) {
    problems.push(
      `could not create the custom search attributes ${names} in namespace "${o.namespace}": ` +
        `${accessProblem(err, 'add search attributes') ?? messageOf(err)} — ${fix}`,
    );
  }
  return problems;
}

/** Throws a TemporalStartupError with one line per problem; resolves when everything is in place. */
export async function checkTemporal(conn: TemporalServices, o: StartupCheckOptions): Promise<void> {
  const ns = await checkNamespace(conn, o);
  if (ns) throw new TemporalStartupError([ns]);
  const problems = await checkSearchAttributes(conn, o);
  if (problems.length > 0) throw new TemporalStartupError(problems);
}

/**
 * Runs a component's start-up (connect, check); on failure logs one error line
 * per problem and exits non-zero, so the pod's restarts show why.
 */
export async function startOrExit<T>(logger: Logger, component: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const problems = err instanceof TemporalStartupError ? err.problems : [messageOf(err)];
    for (const p of problems) logger.error(`${component} cannot start: ${p}`);
    process.exit(1);
  }
}

/** A client connection (watcher, CLI) that passed the checks; closed again when they fail. */
export async function connectClientChecked(s: TemporalSettings, checks: Omit<StartupCheckOptions, 'address' | 'namespace'>): Promise<Connection> {
  const connection = await connectClient(s, checks.logger);
  try {
    await checkTemporal(connection, { ...checks, address: s.address, namespace: s.namespace });
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
  return connection;
}
