// A throw-away PKI for TLS tests, made with the system's `openssl` (execFile,
// no shell): a CA, server certificates signed by it, a client certificate for
// mTLS, and an unrelated CA to prove that a wrong CA is refused.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where openssl is, or undefined (tests that need it skip with a reason). */
export function findOpenssl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'openssl');
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

export interface Pki {
  dir: string;
  caCert: string;
  /** A server certificate for 127.0.0.1 and localhost. */
  serverCert: string;
  serverKey: string;
  /** A server certificate valid only for {@link NAMED_SERVER}: needs TEMPORAL_TLS_SERVER_NAME. */
  namedServerCert: string;
  namedServerKey: string;
  /** A client certificate (extendedKeyUsage clientAuth) signed by the same CA. */
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here. */
  otherCaCert: string;
  otherCaKey: string;
  /** A self-signed certificate that expired on 2 January 2020, and its key. */
  expiredCert: string;
  expiredKey: string;
}

export const NAMED_SERVER = 'temporal.nodeeni.test';

async function openssl(args: string[], cwd: string): Promise<void> {
  const bin = findOpenssl();
  if (!bin) throw new Error('openssl is not on PATH');
  await run(bin, args, { cwd, timeout: 60_000 });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
}

async function makeLeaf(dir: string, name: string, ca: string, ext: string[]): Promise<void> {
  await writeFile(path.join(dir, `${name}.ext`), `${['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ...ext].join('\n')}\n`);
  await openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
}

/** `openssl req` cannot back-date; `openssl ca` can, given a minimal database. */
async function makeExpired(dir: string): Promise<void> {
  await writeFile(path.join(dir, 'expired-ca.cnf'), '[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = expired-index.txt\nnew_certs_dir = .\nserial = expired-serial\ndefault_md = sha256\npolicy = p\n[ p ]\ncommonName = supplied\n');
  await writeFile(path.join(dir, 'expired-index.txt'), '');
  await writeFile(path.join(dir, 'expired-serial'), '01\n');
  await openssl(['req', ...EC, '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/CN=expired'], dir);
  await openssl(['ca', '-batch', '-notext', '-config', 'expired-ca.cnf', '-selfsign', '-keyfile', 'expired.key', '-in', 'expired.csr', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-out', 'expired.crt'], dir);
}

export async function makePki(parent = os.tmpdir()): Promise<Pki> {
  const dir = await mkdtemp(path.join(parent, 'pki-'));
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await makeLeaf(dir, 'server', 'ca', ['extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  await makeLeaf(dir, 'named-server', 'ca', ['extendedKeyUsage=serverAuth', `subjectAltName=DNS:${NAMED_SERVER}`]);
  await makeLeaf(dir, 'client', 'ca', ['extendedKeyUsage=clientAuth']);
  await makeExpired(dir);
  const f = (n: string) => path.join(dir, n);
  return {
    dir,
    caCert: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    namedServerCert: f('named-server.crt'),
    namedServerKey: f('named-server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    otherCaCert: f('other-ca.crt'),
    otherCaKey: f('other-ca.key'),
    expiredCert: f('expired.crt'),
    expiredKey: f('expired.key'),
  };
}
