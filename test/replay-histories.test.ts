// Safe upgrades: every history recorded from a released version
// (test/histories/<label>/index.json, made by test/histories/record.histories.ts)
// replays against the workflow code in this tree. A change that would break a
// workflow running in production fails here. Needs no server.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker, type ReplayResult, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeJsonLogger } from '../workers/logger.js';
import { installRuntime } from '../workers/bootstrap.js';
import { workflowBundle } from './support/cluster.js';
import { dataConverter } from '../workers/payload-codec.js';

interface Fixture {
  label: string;
  file: string;
  workflowId: string;
  runId: string;
  workflowType: string;
  scenario: string;
  status: 'running' | 'completed' | 'failed' | 'continued-as-new';
  events: number;
}

const HISTORIES = path.resolve(import.meta.dirname, 'histories');
const NEGATIVE_CONTROL = path.resolve(import.meta.dirname, 'fixtures', 'replay-negative', 'workflows.ts');
const WORKFLOW_TYPES = ['nodeEniEntity', 'provisionAttachment', 'teardownAttachment', 'devicePluginNode', 'resctrlNode'];
const LONG_LIVED = ['nodeEniEntity', 'devicePluginNode', 'resctrlNode'];

const fixtures: Fixture[] = readdirSync(HISTORIES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(path.join(HISTORIES, d.name, 'index.json')))
  .sort((a, b) => a.name.localeCompare(b.name))
  .flatMap((d) => (JSON.parse(readFileSync(path.join(HISTORIES, d.name, 'index.json'), 'utf8')) as Omit<Fixture, 'label'>[]).map((e) => ({ ...e, label: d.name })));

function historyOf(f: Fixture): History {
  return historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES, f.label, f.file), 'utf8')));
}

const keyOf = (f: Pick<Fixture, 'workflowId' | 'runId'>) => `${f.workflowId}/${f.runId}`;

let bundle: WorkflowBundleWithSourceMap;
// One replay worker for every history (runReplayHistories) rather than a worker built
// for each; every file read once.
const replayed = new Map<string, ReplayResult>();
const eventCounts = new Map<string, number | undefined>();
beforeAll(async () => {
  installRuntime({ logLevel: 'WARN' });
  bundle = await workflowBundle();
  const histories = fixtures.map((f) => {
    const history = historyOf(f);
    eventCounts.set(keyOf(f), history.events?.length);
    return { workflowId: f.workflowId, history };
  });
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle, dataConverter }, histories)) replayed.set(keyOf(result), result);
});

describe('recorded histories replay against this code', () => {
  it('cover every workflow type, and every long-lived type while running', () => {
    for (const type of WORKFLOW_TYPES) expect(fixtures.some((f) => f.workflowType === type), `a ${type} fixture`).toBe(true);
    for (const type of LONG_LIVED) expect(fixtures.some((f) => f.workflowType === type && f.status === 'running'), `a running ${type} fixture`).toBe(true);
    expect(new Set(fixtures.map(keyOf)).size, 'each fixture is its own run').toBe(fixtures.length);
  });

  for (const f of fixtures) {
    it(`${f.label}/${f.file} (${f.scenario}, ${f.status}, ${f.events} events)`, async () => {
      expect(eventCounts.get(keyOf(f))).toBe(f.events);
      const result = replayed.get(keyOf(f));
      expect(result, 'replayed').toBeDefined();
      if (result!.error) throw result!.error;
    });
  }
});

describe('negative control', () => {
  it('a different nodeEniEntity (it starts with a timer) fails to replay a recorded entity history', async () => {
    const f = fixtures.find((x) => x.workflowType === 'nodeEniEntity' && x.status === 'running') ?? fixtures.find((x) => x.workflowType === 'nodeEniEntity');
    expect(f, 'a nodeEniEntity fixture').toBeDefined();
    const other = await bundleWorkflowCode({ workflowsPath: NEGATIVE_CONTROL, logger: makeJsonLogger('WARN') });
    await expect(Worker.runReplayHistory({ workflowBundle: other }, historyOf(f!), f!.workflowId)).rejects.toBeInstanceOf(DeterminismViolationError);
    // The batch replay the fixtures go through reports the same failure in its result.
    const results: ReplayResult[] = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle: other }, [{ workflowId: f!.workflowId, history: historyOf(f!) }])) results.push(r);
    expect(results).toHaveLength(1);
    expect(results[0]!.error).toBeInstanceOf(DeterminismViolationError);
  });
});
