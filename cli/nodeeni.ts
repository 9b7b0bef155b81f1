// `nodeeni` — operator CLI.
//   nodeeni force-finish NAME --reason TEXT [--node NODE]
//   nodeeni state NAME
// Connects with TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (or --address / --namespace) and
// the same TLS / API-key variables as the components (TEMPORAL_TLS, TEMPORAL_TLS_*,
// TEMPORAL_API_KEY, TEMPORAL_API_KEY_FILE), validated the same way.
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { loadConfig, temporalClientConfigSchema } from '../workers/config.js';
import { temporalSettings } from '../workers/temporal-connection.js';
import { connectClientChecked } from '../workers/temporal-startup.js';
import { entityView, forceFinish } from './operator-client.js';
import { dataConverter } from '../workers/payload-codec.js';

const USAGE = `usage:
  nodeeni force-finish NAME --reason TEXT [--node NODE]   end a stuck teardown; leftovers are tagged and recorded
  nodeeni state NAME                                      show the entity workflow's state
options: --address HOST:PORT (default $TEMPORAL_ADDRESS or 127.0.0.1:7233), --namespace NS (default $TEMPORAL_NAMESPACE or default)
TLS and API key from the environment: TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
  TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY or TEMPORAL_API_KEY_FILE`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      reason: { type: 'string' },
      node: { type: 'string' },
      address: { type: 'string' },
      namespace: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, name] = positionals;
  if (values.help || !command || !name) {
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
    if (command === 'force-finish') {
      if (!values.reason) throw new Error('force-finish needs --reason');
      const res = await forceFinish(client, name, { reason: values.reason, node: values.node });
      process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
      return 0;
    }
    if (command === 'state') {
      process.stdout.write(`${JSON.stringify(await entityView(client, name), null, 2)}\n`);
      return 0;
    }
    process.stderr.write(`unknown command "${command}"\n${USAGE}\n`);
    return 2;
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
