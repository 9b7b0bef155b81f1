// The real backends behave as the rest of the suite expects.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DescribeVpcsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, VersionApi } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SA_ENI_ID, SA_NODEENI, SA_NODE_NAME } from '../common/search-attributes.js';
import { applyCrds } from '../sandbox/backends/kube.js';
import { startTemporal, type TemporalServer } from '../sandbox/backends/temporal.js';
import { TOOL, freePort, startProcess, waitUntil } from '../sandbox/backends/tools.js';
import { getBackends, kubeConfigFor } from './support/backends.js';

const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD

describe('shared Temporal dev server', () => {
  it('serves the namespace with the project search attributes', async () => {
    const b = getBackends();
    const connection = await Connection.connect({ address: b.temporalAddress });
    try {
      const { namespaces } = await connection.workflowService.listNamespaces({});
      expect(namespaces.map((n) => n.namespaceInfo?.name)).toContain(b.temporalNamespace);
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: b.temporalNamespace });
      for (const key of [SA_NODEENI, SA_NODE_NAME, SA_ENI_ID]) {
        expect(customAttributes?.[key.name], key.name).toBe(KEYWORD);
      }
    } finally {
      await connection.close();
    }
  });
});

describe('moto', () => {
  it('answers EC2 DescribeVpcs with the default VPC', async () => {
    const ec2 = new EC2Client({
      endpoint: getBackends().motoEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    });
    const { Vpcs } = await ec2.send(new DescribeVpcsCommand({}));
    expect(Vpcs?.some((v) => v.IsDefault && v.VpcId?.startsWith('vpc-'))).toBe(true);
  });
});

describe('kube-apiserver', () => {
  it('reports the built version', async () => {
    const info = await kubeConfigFor(getBackends()).makeApiClient(VersionApi).getCode();
    expect(info.gitVersion).toBe('v1.37.2');
  });

  it('stores, returns and deletes a ConfigMap', async () => {
    const core = kubeConfigFor(getBackends()).makeApiClient(CoreV1Api);
    const name = `probe-${randomUUID().slice(0, 8)}`;
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name }, data: { answer: '42' } } });
    const read = await core.readNamespacedConfigMap({ namespace: 'default', name });
    expect(read.data).toEqual({ answer: '42' });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name });
    await expect(core.readNamespacedConfigMap({ namespace: 'default', name })).rejects.toMatchObject({ code: 404 });
  });
});

describe('applyCrds', () => {
  it('creates a CRD, serves its resources and replaces it when applied again', async () => {
    const kc = kubeConfigFor(getBackends());
    const group = `t${randomUUID().slice(0, 8)}.example.com`;
    const crdName = `widgets.${group}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'crds-'));
    const manifest = (description: string) => `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${crdName}
spec:
  group: ${group}
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          description: ${description}
          properties:
            spec: { type: object, properties: { size: { type: integer } } }
`;
    try {
      await writeFile(path.join(dir, 'widgets.yaml'), manifest('first'));
      await writeFile(path.join(dir, 'ignored.txt'), 'not a manifest');
      expect(await applyCrds(kc, dir)).toEqual([crdName]);
      await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
        group, version: 'v1', namespace: 'default', plural: 'widgets',
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
      });

      await writeFile(path.join(dir, 'widgets.yaml'), manifest('second'));
      expect(await applyCrds(kc, dir)).toEqual([crdName]);
      const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: crdName });
      expect(crd.spec.versions[0]?.schema?.openAPIV3Schema?.description).toBe('second');
    } finally {
      await kc.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: crdName }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Temporal dev server with a db file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'temporal-db-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps workflow history and search attributes across a restart', async () => {
    const dbFile = path.join(dir, 'restart.db');
    const workflowId = `restart-${randomUUID()}`;

    await withServer(await startTemporal({ dbFile }), async (client) => {
      const handle = await client.workflow.start('NoWorkerWorkflow', {
        taskQueue: `no-worker-${randomUUID()}`,
        workflowId,
        typedSearchAttributes: [{ key: SA_NODE_NAME, value: 'node-a' }],
      });
      await handle.signal('poke', 'before-restart');
    });

    await withServer(await startTemporal({ dbFile }), async (client) => {
      const handle = client.workflow.getHandle(workflowId);
      const history = await handle.fetchHistory();
      const signal = history.events?.find((e) => e.workflowExecutionSignaledEventAttributes);
      expect(signal?.workflowExecutionSignaledEventAttributes?.signalName).toBe('poke');
      const description = await handle.describe();
      expect(description.typedSearchAttributes.get(SA_NODE_NAME)).toBe('node-a');
      await waitUntil('visibility query after restart', async () => {
        for await (const wf of client.workflow.list({ query: `NodeName = "node-a"` })) {
          if (wf.workflowId === workflowId) return true;
        }
        return false;
      }, { timeoutMs: 20_000 });
      await handle.terminate('test done');
    });
  });

  it('adds the project search attributes to a db created without them', async () => {
    const dbFile = path.join(dir, 'bare.db');
    // A db whose namespace was created by a plain dev server, with no custom attributes.
    const port = await freePort();
    const bare = startProcess('temporal-bare', TOOL.temporal, ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--db-filename', dbFile, '--log-level', 'warn']);
    let bareAttributes: Record<string, unknown> | undefined;
    try {
      await waitUntil('bare temporal', async () => {
        const c = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: '2s' });
        try {
          bareAttributes = (await c.operatorService.listSearchAttributes({ namespace: 'default' })).customAttributes ?? {};
          return true;
        } finally {
          await c.close();
        }
      }, { timeoutMs: 60_000, proc: bare });
    } finally {
      await bare.stop();
    }
    expect(bareAttributes).toBeDefined();
    expect(bareAttributes?.[SA_NODE_NAME.name]).toBeUndefined();

    const server = await startTemporal({ dbFile });
    try {
      const connection = await Connection.connect({ address: server.address });
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: server.namespace });
        for (const key of [SA_NODEENI, SA_NODE_NAME, SA_ENI_ID]) {
          expect(customAttributes?.[key.name], key.name).toBe(KEYWORD);
        }
      } finally {
        await connection.close();
      }
    } finally {
      await server.stop();
    }
  });
});

async function withServer(server: TemporalServer, fn: (client: Client) => Promise<void>): Promise<void> {
  try {
    const connection = await Connection.connect({ address: server.address });
    try {
      await fn(new Client({ connection, namespace: server.namespace }));
    } finally {
      await connection.close();
    }
  } finally {
    await server.stop();
  }
}
