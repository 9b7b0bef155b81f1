// `nodeeni` — operator CLI.
//   nodeeni force-finish NAME --reason TEXT [--node NODE]
//   nodeeni state NAME
// Connects with TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (or --address / --namespace).
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { entityView, forceFinish } from './operator-client.js';

const USAGE = `usage:
  nodeeni force-finish NAME --reason TEXT [--node NODE]   end a stuck teardown; leftovers are tagged and recorded
  nodeeni state NAME                                      show the entity workflow's state
options: --address HOST:PORT (default $TEMPORAL_ADDRESS or 127.0.0.1:7233), --namespace NS (default $TEMPORAL_NAMESPACE or default)`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      reason: { type: 'string' },
      node: { type: 'string' },
      address: { type: 'string', default: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' },
      namespace: { type: 'string', default: process.env.TEMPORAL_NAMESPACE ?? 'default' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, name] = positionals;
  if (values.help || !command || !name) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const connection = await Connection.connect({ address: values.address });
  try {
    const client = new Client({ connection, namespace: values.namespace });
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
    process.stderr.write(`nodeeni: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
