// The echo node's admin endpoint (`multipaxos node --admin`), a real process: it answers the
// membership and master routes on loopback; it has no TLS or authentication, so with --tls-dir it
// is refused on any address but loopback (exit 2, one clear line) before the node starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createCa, issueNodeCert } from '../../src/security/cert-tool.js';
import { runCli, spawnCli } from '../support/cluster-up.js';
import { httpCall, waitFor } from '../kv/http-helpers.js';
import { freePort, tempRoot } from '../support/local.js';

async function tlsDir(): Promise<{ root: string; dir: string }> {
  const root = await tempRoot('node-admin');
  const dir = join(root, 'tls');
  const ca = await createCa(dir);
  await issueNodeCert(ca, dir, 1);
  return { root, dir };
}

test('with --tls-dir, --admin on a non-loopback address is refused before the node starts', async () => {
  const { root, dir } = await tlsDir();
  const port = await freePort();
  for (const admin of ['0.0.0.0:0', '[::]:0', '192.0.2.1:0']) {
    const run = await runCli(['node', '--id', '1', '--listen', `127.0.0.1:${port}`, '--peers', `1=127.0.0.1:${port}`,
      '--data', join(root, 'data'), '--tls-dir', dir, '--admin', admin, '--quiet']);
    assert.equal(run.code, 2, `${admin}: ${run.stderr}`);
    assert.match(run.stderr, /admin endpoint has no TLS or authentication; bind it to loopback/);
  }
});

test('the admin endpoint on loopback answers /v1/master and /v1/members (with --tls-dir too)', async () => {
  const { root, dir } = await tlsDir();
  const [port, adminPort] = [await freePort(), await freePort()];
  const node = spawnCli(['node', '--id', '1', '--listen', `127.0.0.1:${port}`, '--peers', `1=127.0.0.1:${port}`,
    '--data', join(root, 'data'), '--tls-dir', dir, '--admin', `127.0.0.1:${adminPort}`, '--master-lease', '1000',
    '--quiet']);
  try {
    const admin = `http://127.0.0.1:${adminPort}`;
    await waitFor('the node is master of its group', async () => {
      const answer = await httpCall(admin, 'GET', '/v1/master?group=0').catch(() => undefined);
      return answer?.status === 200 && (JSON.parse(answer.text) as { isMaster?: boolean }).isMaster === true;
    }, 20_000);
    const members = await httpCall(admin, 'GET', '/v1/members?group=0');
    assert.equal(members.status, 200, members.text);
    const listed = (JSON.parse(members.text) as { members: { id: number }[] }).members;
    assert.deepEqual(listed.map((member) => member.id), [1]);
    assert.equal((await httpCall(admin, 'GET', '/nowhere')).status, 404);
  } finally {
    node.child.kill('SIGTERM');
    if (await node.exitWithin(10_000) === undefined) node.kill();
  }
});
