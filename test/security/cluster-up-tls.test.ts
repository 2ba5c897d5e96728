// `multipaxos cluster up --tls` as a real process tree: it makes a CA, node certificates and an
// admin token in DIR/tls, starts the nodes with mutual TLS, HTTPS and tokens, prints how to use
// them, and the CLI works with the printed environment (MULTIPAXOS_CA, MULTIPAXOS_TOKEN) and
// fails with 401 without the token. `multipaxos cert init|issue|token` make what a cluster needs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { nodeIdsOf } from '../../src/security/node-identity.js';
import { processesMentioning, runCli, runCliWith, startClusterUp, type Spawned } from '../support/cluster-up.js';
import { tempRoot } from '../support/local.js';

const track: Spawned[] = [];
let clusterDir = '';
// The cluster's directory is ours to remove, after its processes are gone (a tempRoot could be
// removed by its own hook first, while nodes still write into it).
after(async () => {
  for (const run of track) run.kill();
  await Promise.all(track.map((run) => run.exited));
  if (clusterDir === '') return;
  for (let i = 0; i < 100 && (await processesMentioning(clusterDir)).length > 0; i++) await sleep(100);
  await rm(clusterDir, { recursive: true, force: true });
});

test('cert init, issue and token make a CA, node certificates naming their node, and token lines', async () => {
  const dir = join(await tempRoot('cert-cli'), 'ca');
  let run = await runCli(['cert', 'init', '--dir', dir]);
  assert.equal(run.code, 0, run.stderr);
  run = await runCli(['cert', 'issue', '--dir', dir, '--node', '7', '--hosts', 'db7.example,10.0.0.7']);
  assert.equal(run.code, 0, run.stderr);
  const cert = new X509Certificate(await readFile(join(dir, 'node-7.crt')));
  const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  assert.deepEqual(nodeIdsOf(cert), [7]);
  assert.match(cert.subjectAltName ?? '', /DNS:db7\.example/);
  assert.match(cert.subjectAltName ?? '', /IP Address:10\.0\.0\.7/);
  assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA');
  assert.equal((await stat(join(dir, 'node-7.key'))).mode & 0o077, 0, 'the key is private');
  run = await runCli(['cert', 'init', '--dir', dir]);
  assert.equal(run.code, 1, 'an existing CA is not overwritten');
  run = await runCli(['cert', 'token', '--role', 'admin']);
  assert.match(run.stdout, /^admin [A-Za-z0-9_-]{43}\n$/);
});

test('cluster up --tls: secured nodes, printed usage, and the CLI with the printed environment', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cluster-tls-'));
  clusterDir = dir;
  const cluster = await startClusterUp({ dir, json: false, flags: ['--tls', '--master-lease', '1000'], track,
    readyTimeoutMs: 40_000 });
  try {
    assert.ok(cluster.endpoints.every((endpoint) => endpoint.startsWith('https://')), cluster.endpoints.join());
    const out = cluster.stdout();
    const ca = join(dir, 'tls', 'ca.crt');
    assert.ok(out.includes(`MULTIPAXOS_CA=${ca}`), out);
    assert.match(out, /curl --cacert \S+ -H "Authorization: Bearer \$MULTIPAXOS_TOKEN" https:\/\//);
    const token = (await readFile(join(dir, 'tls', 'admin.token'), 'utf8')).trim();
    assert.ok(!out.includes(token) && !cluster.stderr().includes(token), 'the token itself is never printed');
    const env = { ...process.env, MULTIPAXOS_ENDPOINTS: cluster.endpoints.join(','), MULTIPAXOS_CA: ca, MULTIPAXOS_TOKEN: token };
    let run = await runCliWith(['kv', 'put', 'greeting', 'hello'], { env });
    assert.equal(run.code, 0, run.stderr);
    run = await runCliWith(['kv', 'get', 'greeting'], { env });
    assert.deepEqual([run.code, run.stdout], [0, 'hello\n'], run.stderr);
    run = await runCliWith(['kv', 'get', 'greeting'], { env: { ...env, MULTIPAXOS_TOKEN: '' } });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /UNAUTHENTICATED/);
    const node = cluster.endpoints[0] as string;
    run = await runCliWith(['members', 'list', '--node', node, '--json'], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as { members: { id: number }[] }).members.map((m) => m.id).sort(),
      [1, 2, 3]);
    run = await runCliWith(['status', '--json'], { env });
    assert.equal(run.code, 0, run.stderr);
  } finally {
    cluster.child.kill('SIGINT');
    const exit = await cluster.exitWithin(20_000);
    if (exit === undefined) cluster.kill();
    assert.deepEqual(exit, { code: 0, signal: null }, cluster.stderr());
  }
  assert.deepEqual(await processesMentioning(dir), []);
});
