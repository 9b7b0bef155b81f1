// Start-up configuration: validated before any client exists, one clear line per bad value.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTsProcess } from '../sandbox/backends/tools.js';
import { controlConfigSchema, loadConfig, nodeAgentConfigSchema, watcherConfigSchema } from '../workers/config.js';

describe('node agent configuration', () => {
  it('names a missing NODE_NAME', () => {
    expect(() => loadConfig(nodeAgentConfigSchema, {})).toThrow(/NODE_NAME: NODE_NAME is required/);
  });

  it('rejects hostile or malformed values, each with its variable', async () => {
    const err = (() => {
      try {
        loadConfig(nodeAgentConfigSchema, { NODE_NAME: '../etc', HOST_ROOT: 'relative/root', METRICS_BIND_ADDRESS: 'nope' });
      } catch (e) {
        return String(e);
      }
      return '';
    })();
    expect(err).toMatch(/NODE_NAME: must be a lowercase DNS subdomain/);
    expect(err).toMatch(/HOST_ROOT: must be an absolute path/);
    expect(err).toMatch(/METRICS_BIND_ADDRESS: must be host:port/);
    expect(() => loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'n1', HOST_ROOT: '/no/such/dir' })).toThrow(/HOST_ROOT: must be an existing directory/);
    expect(() => loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'n1', HOST_ROOT: '/host/../etc' })).toThrow(/HOST_ROOT: must not contain/);
  });

  it('accepts a valid environment', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'root-'));
    const cfg = loadConfig(nodeAgentConfigSchema, { NODE_NAME: 'ip-10-0-0-10.ec2.internal', HOST_ROOT: root });
    expect(cfg).toMatchObject({ NODE_NAME: 'ip-10-0-0-10.ec2.internal', HOST_ROOT: root, TEMPORAL_NAMESPACE: 'default' });
  });

  it('the agent process exits at once with the message, before connecting anywhere', async () => {
    const started = Date.now();
    // Port 1 is closed: had the agent tried to connect first, it would hang or report that instead.
    const p = startTsProcess('node-agent', 'workers/node-agent.ts', { env: { NODE_NAME: '', TEMPORAL_ADDRESS: '127.0.0.1:1' } });
    const code = await new Promise<number | null>((resolve) => p.child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(p.tail()).toContain('NODE_NAME');
    expect(p.tail()).not.toMatch(/connect|ECONNREFUSED/i);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe('control worker and watcher configuration', () => {
  it('requires AWS_REGION and parses lists', () => {
    expect(() => loadConfig(controlConfigSchema, {})).toThrow(/AWS_REGION/);
    const cfg = loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1', DEVICE_PLUGIN_NAMESPACES: 'kube-system, sriov' });
    expect(cfg.DEVICE_PLUGIN_NAMESPACES).toEqual(['kube-system', 'sriov']);
    expect(cfg.DEVICE_PLUGIN_SELECTORS.length).toBeGreaterThan(0);
    expect(() => loadConfig(controlConfigSchema, { AWS_REGION: 'us-east-1', DEVICE_PLUGIN_SELECTORS: 'app' })).toThrow(/selectors are key=value/);
  });

  it('bounds the watcher timings', () => {
    expect(() => loadConfig(watcherConfigSchema, { RESYNC_SECONDS: '1' })).toThrow(/RESYNC_SECONDS/);
    expect(loadConfig(watcherConfigSchema, {}).RESYNC_SECONDS).toBe(300);
  });
});
