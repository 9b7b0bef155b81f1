// `nodeeni` — operator CLI.
//   nodeeni force-finish NAME --reason TEXT [--node NODE]
//   nodeeni state NAME
//   nodeeni explain NAME
//   nodeeni status [-l SELECTOR] [--json]
//   nodeeni sweep [--dry-run] [--json]
// Connects with TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (or --address / --namespace) and
// the same TLS / API-key variables as the components (TEMPORAL_TLS, TEMPORAL_TLS_*,
// TEMPORAL_API_KEY, TEMPORAL_API_KEY_FILE), validated the same way. status and explain
// read the Kubernetes API through KUBECONFIG (or the in-cluster config); status reads
// EC2 with the standard AWS variables (AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2).
import { parseArgs } from 'node:util';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../activities/kube/pooled-kube-config.js';
import { Client } from '@temporalio/client';
import { DEFAULT_SWEEPER_SCHEDULE_ID } from '../common/names.js';
import { loadConfig, temporalClientConfigSchema } from '../workers/config.js';
import { temporalSettings } from '../workers/temporal-connection.js';
import { connectClientChecked } from '../workers/temporal-startup.js';
import { entityView, forceFinish } from './operator-client.js';
import { explainNodeEni, explainText } from './explain.js';
import { clusterStatus, statusTable } from './status.js';
import { sweepNow, sweepTable } from './sweep.js';
import { dataConverter } from '../workers/payload-codec.js';

const USAGE = `usage:
  nodeeni force-finish NAME --reason TEXT [--node NODE]   end a stuck teardown; leftovers are tagged and recorded
  nodeeni state NAME                                      show the entity workflow's state
  nodeeni explain NAME                                    why NAME is not Ready, and how to force-finish what is stuck
  nodeeni status [-l SELECTOR] [--json]                   every NodeENI: Ready, ENIs in EC2, its workflow
  nodeeni sweep [--dry-run] [--json]                      run the leaked-ENI sweeper now and show what it did
options: --address HOST:PORT (default $TEMPORAL_ADDRESS or 127.0.0.1:7233), --namespace NS (default $TEMPORAL_NAMESPACE or default)
sweep: --schedule ID (default $SWEEP_SCHEDULE_ID or ${DEFAULT_SWEEPER_SCHEDULE_ID}) takes the settings of that schedule;
  --cluster NAME, --grace-seconds N, --task-queue Q override them (and are needed when the schedule does not exist)
TLS and API key from the environment: TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
  TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY or TEMPORAL_API_KEY_FILE
Kubernetes (status, explain): KUBECONFIG or the in-cluster config; EC2 (status): AWS_REGION, AWS credentials, AWS_ENDPOINT_URL_EC2`;

const NAMED = new Set(['force-finish', 'state', 'explain']);
const COMMANDS = new Set([...NAMED, 'status', 'sweep']);

function kubeConfig(): KubeConfig {
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  return kc;
}

const print = (text: string) => process.stdout.write(`${text}\n`);
const json = (value: unknown) => print(JSON.stringify(value, null, 2));

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      reason: { type: 'string' },
      node: { type: 'string' },
      address: { type: 'string' },
      namespace: { type: 'string' },
      json: { type: 'boolean' },
      selector: { type: 'string', short: 'l' },
      'dry-run': { type: 'boolean' },
      schedule: { type: 'string' },
      cluster: { type: 'string' },
      'grace-seconds': { type: 'string' },
      'task-queue': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, name] = positionals;
  if (values.help || !command || !COMMANDS.has(command) || (NAMED.has(command) && !name)) {
    if (command && !COMMANDS.has(command)) process.stderr.write(`unknown command "${command}"\n`);
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const config = loadConfig(temporalClientConfigSchema, {
    ...process.env,
    ...(values.address !== undefined ? { TEMPORAL_ADDRESS: values.address } : {}),
    ...(values.namespace !== undefined ? { TEMPORAL_NAMESPACE: values.namespace } : {}),
  });
  const temporal = temporalSettings(config);
  // A wrong namespace or credentials: one clear line instead of a failed query.
  const connection = await connectClientChecked(temporal, {});
  try {
    const client = new Client({ connection, namespace: temporal.namespace, dataConverter });
    switch (command) {
      case 'force-finish': {
        if (!values.reason) throw new Error('force-finish needs --reason');
        json(await forceFinish(client, name!, { reason: values.reason, node: values.node }));
        return 0;
      }
      case 'state':
        json(await entityView(client, name!));
        return 0;
      case 'explain': {
        const e = await explainNodeEni({ client, kc: kubeConfig(), name: name! });
        if (values.json) json(e);
        else print(explainText(e));
        return 0;
      }
      case 'status': {
        // The SDK reads AWS_REGION, the credential chain and AWS_ENDPOINT_URL_EC2 itself.
        const rows = await clusterStatus({ client, kc: kubeConfig(), ec2: new EC2Client({}), labelSelector: values.selector });
        if (values.json) json(rows);
        else print(statusTable(rows));
        return 0;
      }
      default: {
        const grace = values['grace-seconds'];
        if (grace !== undefined && !/^\d+$/.test(grace)) throw new Error(`--grace-seconds must be a whole number of seconds, got "${grace}"`);
        const run = await sweepNow(client, {
          scheduleId: values.schedule ?? process.env.SWEEP_SCHEDULE_ID ?? DEFAULT_SWEEPER_SCHEDULE_ID,
          dryRun: values['dry-run'] === true,
          clusterName: values.cluster,
          graceSeconds: grace === undefined ? undefined : Number(grace),
          taskQueue: values['task-queue'],
        });
        if (values.json) json(run);
        else print(sweepTable(run));
        return run.result.counts.failed > 0 ? 1 : 0;
      }
    }
  } finally {
    await connection.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const message = err instanceof Error ? err.message : String(err);
    for (const line of message.split('\n')) if (line.trim()) process.stderr.write(`nodeeni: ${line.trim()}\n`);
    process.exit(1);
  },
);
