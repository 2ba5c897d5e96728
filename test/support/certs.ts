// Certificates for TLS tests, made with the same tooling as `multipaxos cert` (real openssl): the
// cluster's CA and node certificates, and the bad ones an attacker or a careless operator would
// bring: another CA's, an expired one, one naming another node.
import { join } from 'node:path';
import { createCa, issueNodeCert, type CertFiles } from '../../src/security/cert-tool.js';
import type { TlsFileOptions } from '../../src/security/tls-files.js';
import { tempRoot } from './local.js';

export interface TestPki {
  readonly dir: string;
  readonly ca: CertFiles;
  /** Another, unrelated CA (an attacker's, or a previous cluster's). */
  readonly otherCa: CertFiles;
  /** TLS options of node `id`, with a certificate of the cluster CA naming it. */
  node(id: number): Promise<TlsFileOptions>;
  /** A certificate naming node `id` from the other CA, trusting the other CA. */
  foreign(id: number): Promise<TlsFileOptions>;
  /** A certificate of the cluster CA naming node `id` that expired an hour ago. */
  expired(id: number): Promise<TlsFileOptions>;
}

export async function makeTestPki(prefix = 'pki'): Promise<TestPki> {
  const dir = await tempRoot(prefix);
  const ca = await createCa(join(dir, 'ca'), { name: 'test cluster CA' });
  const otherCa = await createCa(join(dir, 'other-ca'), { name: 'attacker CA' });
  const nodes = new Map<number, Promise<TlsFileOptions>>();
  const options = (files: CertFiles, caFile: string): TlsFileOptions =>
    ({ ca: caFile, cert: files.cert, key: files.key, reloadIntervalMs: 200 });
  return {
    dir, ca, otherCa,
    node(id) {
      let made = nodes.get(id);
      if (made === undefined) {
        made = issueNodeCert(ca, join(dir, 'nodes'), id).then((files) => options(files, ca.cert));
        nodes.set(id, made);
      }
      return made;
    },
    async foreign(id) {
      return options(await issueNodeCert(otherCa, join(dir, 'foreign'), id), otherCa.cert);
    },
    async expired(id) {
      const hour = 60 * 60 * 1000;
      const files = await issueNodeCert(ca, join(dir, 'expired'), id,
        { notBefore: new Date(Date.now() - 48 * hour), notAfter: new Date(Date.now() - hour) });
      return options(files, ca.cert);
    },
  };
}
