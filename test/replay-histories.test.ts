// Safe upgrades: every history recorded from a released version
// (test/histories/<label>/index.json, made by test/histories/record.histories.ts)
// replays against the workflow code in this tree. A change that would break a
// workflow running in production fails here. Needs no server.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
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

let bundle: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  installRuntime({ logLevel: 'WARN' });
  bundle = await workflowBundle();
});

describe('recorded histories replay against this code', () => {
  it('cover every workflow type, and every long-lived type while running', () => {
    for (const type of WORKFLOW_TYPES) expect(fixtures.some((f) => f.workflowType === type), `a ${type} fixture`).toBe(true);
    for (const type of LONG_LIVED) expect(fixtures.some((f) => f.workflowType === type && f.status === 'running'), `a running ${type} fixture`).toBe(true);
  });

  for (const f of fixtures) {
    it(`${f.label}/${f.file} (${f.scenario}, ${f.status}, ${f.events} events)`, async () => {
      const history = historyOf(f);
      expect(history.events?.length).toBe(f.events);
      await Worker.runReplayHistory({ workflowBundle: bundle, dataConverter }, history, f.workflowId);
    });
  }
});

describe('negative control', () => {
  it('a different nodeEniEntity (it starts with a timer) fails to replay a recorded entity history', async () => {
    const f = fixtures.find((x) => x.workflowType === 'nodeEniEntity' && x.status === 'running') ?? fixtures.find((x) => x.workflowType === 'nodeEniEntity');
    expect(f, 'a nodeEniEntity fixture').toBeDefined();
    const other = await bundleWorkflowCode({ workflowsPath: NEGATIVE_CONTROL, logger: makeJsonLogger('WARN') });
    await expect(Worker.runReplayHistory({ workflowBundle: other }, historyOf(f!), f!.workflowId)).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
