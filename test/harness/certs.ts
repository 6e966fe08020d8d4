import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM texts of a throwaway PKI: one CA, a server certificate for 127.0.0.1/localhost, a client certificate. */
export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A key that belongs to no certificate. */
  otherKey: string;
  /** Common name of the client certificate. */
  clientName: string;
  cleanup(): Promise<void>;
}

/**
 * Generates the PKI with the openssl CLI in a temporary directory (EC P-256 keys: fast). Every
 * certificate is valid for two days from now; the extended key usages are set as a real PKI would
 * set them, so a server certificate cannot pass as a client one.
 */
export async function createTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-certs-'));
  const at = (name: string): string => join(dir, name);
  const openssl = async (...args: string[]): Promise<void> => {
    try {
      await run('openssl', args, { cwd: dir });
    } catch (err) {
      throw new Error(`openssl ${args[0]} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
    }
  };
  const newKey = (name: string) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', at(name));

  await newKey('ca.key');
  await writeFile(at('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  await openssl('req', '-new', '-key', at('ca.key'), '-subj', '/CN=Wharf Test CA', '-out', at('ca.csr'));
  await openssl('x509', '-req', '-in', at('ca.csr'), '-signkey', at('ca.key'), '-days', '2', '-extfile', at('ca.ext'), '-out', at('ca.pem'));

  const issue = async (name: string, cn: string, ext: string): Promise<void> => {
    await newKey(`${name}.key`);
    await writeFile(at(`${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
    await openssl('req', '-new', '-key', at(`${name}.key`), '-subj', `/CN=${cn}`, '-out', at(`${name}.csr`));
    await openssl(
      'x509', '-req', '-in', at(`${name}.csr`), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial',
      '-days', '2', '-extfile', at(`${name}.ext`), '-out', at(`${name}.pem`),
    );
  };
  await issue('server', 'localhost', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost');
  await issue('client', 'wharf-test-client', 'extendedKeyUsage=clientAuth');
  await newKey('other.key');

  const read = (name: string) => readFile(at(name), 'utf8');
  return {
    dir,
    ca: await read('ca.pem'),
    serverCert: await read('server.pem'),
    serverKey: await read('server.key'),
    clientCert: await read('client.pem'),
    clientKey: await read('client.key'),
    otherKey: await read('other.key'),
    clientName: 'wharf-test-client',
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
