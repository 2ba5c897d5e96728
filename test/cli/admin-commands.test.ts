// `multipaxos members` and `multipaxos master` against a running `multipaxos node --admin`.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/local.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const children: ChildProcessWithoutNullStreams[] = [];
const roots: string[] = [];
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const root of roots) await rm(root, { recursive: true, force: true });
});


function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('members list/add/remove/change and master show/drop against a running node', async () => {
  const root = await mkdtemp(join(tmpdir(), 'admin-'));
  roots.push(root);
  const [port, adminPort, spare] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [CLI, 'node', '--id', '1', '--listen', `127.0.0.1:${port}`,
    '--peers', `1=127.0.0.1:${port}`, '--data', join(root, 'n1'), '--master-lease', '1000',
    '--admin', `127.0.0.1:${adminPort}`]);
  children.push(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const deadline = Date.now() + 15_000;
  while (!/master of group 0: node 1/.test(output)) {
    if (Date.now() > deadline) assert.fail(`the node never became master: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const node = ['--node', `127.0.0.1:${adminPort}`];

  const list = cli('members', 'list', ...node, '--json');
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual((JSON.parse(list.stdout) as { members: { id: number }[] }).members.map((m) => m.id), [1]);
  assert.match(cli('members', 'list', ...node).stdout, /group 0: version 0, gid [1-9]\d*\n {2}node 1 {2}127\.0\.0\.1:/,
    'the gid was created at first start');

  // Growing a one-node group to two needs the second node's vote; it is not running, so this
  // change is chosen (by node 1 alone, the old majority) and later changes wait: we stop at one.
  const added = cli('members', 'add', ...node, '--id', '2', '--host', '127.0.0.1', '--port', String(spare), '--json');
  assert.equal(added.status, 0, added.stderr);
  assert.deepEqual((JSON.parse(added.stdout) as { members: { id: number }[] }).members.map((m) => m.id), [1, 2]);
  const again = cli('members', 'add', ...node, '--id', '2', '--host', '127.0.0.1', '--port', String(spare));
  assert.equal(again.status, 1);
  assert.match(again.stderr, /error ALREADY_MEMBER: node 2 is already a member/);
  const badRemove = cli('members', 'remove', ...node, '--id', '7');
  assert.equal(badRemove.status, 1);
  assert.match(badRemove.stderr, /error NO_SUCH_MEMBER: node 7 is not a member/);

  const show = cli('master', 'show', ...node);
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /group 0: (master is node 1|no master)/);
  const drop = cli('master', 'drop', ...node);
  assert.equal(drop.status, 0, drop.stderr);
  assert.match(drop.stdout, /node 1 dropped its master lease of group 0/);
  const after = JSON.parse(cli('master', 'show', ...node, '--json').stdout) as { isMaster: boolean };
  assert.equal(after.isMaster, false, 'a dropped master steps down at once');

  const base = `http://127.0.0.1:${adminPort}`;
  const bad = async (path: string, init: RequestInit, status: number, message: RegExp): Promise<void> => {
    const response = await fetch(`${base}${path}`, init);
    assert.equal(response.status, status, path);
    assert.match(((await response.json()) as { message: string }).message, message);
  };
  await bad('/v1/members', { method: 'POST', body: '{not json' }, 400, /not valid JSON/);
  await bad('/v1/members', { method: 'POST', body: '[1]' }, 400, /must be a JSON object/);
  await bad('/v1/members', { method: 'POST', body: '{"id": 0, "host": "h", "port": 1}' }, 400, /id must be a positive/);
  await bad('/v1/members', { method: 'POST', body: 'x'.repeat(70_000) }, 413, /exceeds/);
  await bad('/v1/members', { method: 'PUT' }, 405, /PUT is not allowed/);
  for (const [path, method, allow] of [['/v1/members', 'PUT', 'GET, POST'], ['/v1/members/2', 'GET', 'DELETE'],
    ['/v1/master/drop', 'GET', 'POST'], ['/v1/master', 'POST', 'GET'], ['/v1/members/change', 'GET', 'POST']]) {
    const response = await fetch(`${base}${path}`, { method });
    assert.deepEqual([response.status, response.headers.get('allow')], [405, allow], `${method} ${path}`);
    await response.arrayBuffer();
  }
  await bad('/v1/nope', { method: 'GET' }, 404, /no such path/);
  await bad('/v1/members?group=abc', { method: 'GET' }, 400, /group must be an integer/);
  await bad('/v1/members?group=5', { method: 'GET' }, 400, /group 5 does not exist/);
  // A request the membership refuses is a conflict with the group's state, not a malformed one.
  await bad('/v1/members', { method: 'POST', body: `{"id": 2, "host": "127.0.0.1", "port": ${spare}}` }, 409,
    /already a member/);
  await bad('/v1/members/7', { method: 'DELETE' }, 404, /node 7 is not a member/);
  assert.equal(cli('members', 'list', '--node', '127.0.0.1:1').status, 1, 'an unreachable node is an error');
  assert.equal(cli('members', 'frobnicate', ...node).status, 2);
  assert.equal(cli('members', 'add', ...node, '--id', '3').status, 2, 'a missing flag is a usage error');
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
});

test('an admin command that cannot reach its node, or gets no answer, says so in one line, exit 1', async () => {
  // Port 1 (tcpmux) is closed on any ordinary host, and no test of ours listens there.
  for (const args of [['members', 'list'], ['master', 'show'], ['snapshot', 'create']]) {
    const run = cli(...args, '--node', '127.0.0.1:1');
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, `one line, no stack trace: ${run.stderr}`);
    assert.match(run.stderr, /^multipaxos: cannot reach the node at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  }
  // A listener that never answers: the command's deadline, one line.
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const port = (silent.address() as AddressInfo).port;
    const run = await cliAsync('members', 'list', '--node', `127.0.0.1:${port}`, '--timeout-ms', '300');
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr.trimEnd(), `multipaxos: no answer from 127.0.0.1:${port} within 300 ms`);
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
  // A node that drops the connection in the middle of its answer.
  const cut = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    response.write('{"members":');
    setTimeout(() => response.socket?.destroy(), 50);
  });
  await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
  try {
    const port = (cut.address() as AddressInfo).port;
    const run = await cliAsync('members', 'list', '--node', `127.0.0.1:${port}`);
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr.trimEnd(), `multipaxos: the node at 127.0.0.1:${port} closed the connection in the middle of its answer`);
  } finally {
    cut.closeAllConnections();
    cut.close();
  }
});

/**
 * cli() without blocking this process's event loop (the test's own server must answer meanwhile);
 * the child is killed after 20 s, and its output is complete once its streams close.
 */
async function cliAsync(...args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args]);
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  clearTimeout(killer);
  return { status, stderr };
}
