// `kv serve` at start-up with TLS: a node given another node's certificate stops at once with one
// clear line (instead of being refused by every peer with nothing said here), and a node with TLS
// but no --tokens warns that its API is open. Real processes and certificates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli, spawnCli } from '../support/cluster-up.js';
import { makeTestPki } from '../support/certs.js';
import { freePort, tempRoot } from '../support/local.js';

async function serveArgs(id: number, files: { ca: string; cert: string; key: string }): Promise<string[]> {
  const [paxos, http] = [await freePort(), await freePort()];
  return ['kv', 'serve', '--id', String(id), '--listen', `127.0.0.1:${paxos}`, '--http', `127.0.0.1:${http}`,
    '--peers', `${id}=127.0.0.1:${paxos}`, '--data', join(await tempRoot('kv-serve-startup'), 'data'),
    '--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key];
}

test('a node whose certificate names another node stops at start-up with one clear line', async () => {
  const pki = await makeTestPki('kv-serve-startup');
  const run = await runCli(await serveArgs(2, await pki.node(1)));
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /certificate .*node-1\.crt does not name node 2/);
  assert.doesNotMatch(run.stdout, /serving/);
  const foreign = await runCli(await serveArgs(3, { ...await pki.foreign(3), ca: pki.ca.cert }));
  assert.notEqual(foreign.code, 0);
  assert.match(foreign.stderr, /does not chain to the CA file/);
});

test('TLS without --tokens starts, with a warning that the API is open', async () => {
  const pki = await makeTestPki('kv-serve-open');
  const node = spawnCli(await serveArgs(1, await pki.node(1)));
  try {
    await node.waitFor(/serving https:\/\//, 20_000);
    assert.match(node.stderr(), /warning: node 1 has TLS but no --tokens/);
  } finally {
    node.child.kill('SIGTERM');
    if (await node.exitWithin(10_000) === undefined) node.kill();
  }
});
