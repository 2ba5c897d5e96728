// What `multipaxos cert` makes, with the real openssl: a client certificate is for clients only
// (extended key usage clientAuth, no DNS or IP names, --hosts refused), a node certificate serves
// and dials (serverAuth and clientAuth); and a `cert init` whose openssl fails leaves nothing behind,
// so the next one succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { createCa, issueClientCert, issueNodeCert } from '../../src/security/cert-tool.js';
import { runCli, runCliWith } from '../support/cluster-up.js';
import { tempRoot } from '../support/local.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

test('a client certificate has clientAuth only and names no host; a node certificate has both usages', async () => {
  const dir = await tempRoot('cert-tool');
  const ca = await createCa(join(dir, 'ca'));
  const clientFiles = await issueClientCert(ca, join(dir, 'out'), 'app', { role: 'read' });
  const client = new X509Certificate(readFileSync(clientFiles.cert));
  assert.deepEqual(client.keyUsage, [CLIENT_AUTH]);
  assert.equal(client.subjectAltName, 'URI:multipaxos:role:read');
  const node = new X509Certificate(readFileSync((await issueNodeCert(ca, join(dir, 'out'), 1)).cert));
  assert.deepEqual([...node.keyUsage].sort(), [SERVER_AUTH, CLIENT_AUTH].sort());
  assert.match(String(node.subjectAltName), /DNS:localhost/);
  const cli = await runCli(['cert', 'issue', '--dir', join(dir, 'ca'), '--client', 'app2', '--role', 'write',
    '--hosts', 'db1.example']);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /--hosts goes with --node/);
});

test('a cert init whose openssl fails leaves no ca.key behind: the next one succeeds', async () => {
  const dir = join(await tempRoot('cert-init-fails'), 'ca');
  const failing = await runCliWith(['cert', 'init', '--dir', dir], { env: { ...process.env, MULTIPAXOS_OPENSSL: '/bin/false' } });
  assert.notEqual(failing.code, 0);
  assert.equal(existsSync(join(dir, 'ca.key')), false, 'no orphan key');
  const again = await runCli(['cert', 'init', '--dir', dir]);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(existsSync(join(dir, 'ca.crt')) && existsSync(join(dir, 'ca.key')));
});
