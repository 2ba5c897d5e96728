/**
 * The TLS files and admin token of a local cluster (`multipaxos cluster up --tls`), kept in
 * DIR/tls so that starting the cluster again reuses them: a CA, one certificate per node (naming
 * the node and the cluster's host), a token file for `kv serve --tokens` with one admin token, and
 * that token alone in admin.token (for `$(cat ...)`). Secrets are written with mode 0600.
 *
 * A token file that is already there may hold the operator's own tokens: a new admin token is
 * appended to it, never written over it (which would silently revoke them).
 */
import { access, appendFile, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCa, issueNodeCert } from './cert-tool.js';
import { generateToken } from './tokens.js';

export interface ClusterSecrets {
  readonly dir: string;
  readonly ca: string;
  readonly tokens: string;
  readonly adminTokenFile: string;
  readonly adminToken: string;
  node(id: number): { cert: string; key: string };
}

export function clusterSecretsPaths(dir: string): Omit<ClusterSecrets, 'adminToken'> {
  const tls = join(dir, 'tls');
  return {
    dir: tls, ca: join(tls, 'ca.crt'), tokens: join(tls, 'tokens'), adminTokenFile: join(tls, 'admin.token'),
    node: (id) => ({ cert: join(tls, `node-${id}.crt`), key: join(tls, `node-${id}.key`) }),
  };
}

async function exists(path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false);
}

/** Make whatever is missing (the CA, a node's certificate, the token); keep what is there. */
export async function ensureClusterSecrets(dir: string, nodeIds: readonly number[], host: string):
  Promise<ClusterSecrets> {
  const paths = clusterSecretsPaths(dir);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const ca = { cert: paths.ca, key: join(paths.dir, 'ca.key') };
  if (!await exists(ca.cert)) await createCa(paths.dir, { name: 'multipaxos local cluster CA' });
  const hosts = [...new Set(['localhost', '127.0.0.1', host])];
  for (const id of nodeIds) {
    if (!await exists(paths.node(id).cert)) await issueNodeCert(ca, paths.dir, id, { hosts });
  }
  if (!await exists(paths.adminTokenFile)) {
    const token = generateToken();
    const header = await exists(paths.tokens) ? '' : '# ROLE TOKEN per line: read, write or admin (kv serve --tokens)\n';
    // The file may end without a newline: start the line on a fresh one.
    const separator = header === '' && !(await readFile(paths.tokens, 'utf8')).endsWith('\n') ? '\n' : '';
    await appendFile(paths.tokens, `${header}${separator}admin ${token}\n`, { mode: 0o600 });
    // A mode given when writing applies only to a file being created: an existing one keeps its own.
    await chmod(paths.tokens, 0o600);
    await writeFile(paths.adminTokenFile, `${token}\n`, { mode: 0o600 });
    await chmod(paths.adminTokenFile, 0o600);
  }
  const adminToken = (await readFile(paths.adminTokenFile, 'utf8')).trim();
  return { ...paths, adminToken };
}
