// The HTTP API of three real `multipaxos kv serve` processes with mutual TLS between nodes, HTTPS,
// and bearer tokens with roles: no token is 401, a read token writing is 403, a write token changing
// membership is 403, an admin token works; a request forwarded to the master keeps the caller's
// role (the master authenticates the caller's token again: a token only the forwarding node knows
// is refused there); and replacing a node's certificate files while clients write takes effect for
// new connections with no failed request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { KvClient } from '../../src/kv/client.js';
import { issueClientCert, issueNodeCert } from '../../src/security/cert-tool.js';
import { spawnCli, type Spawned } from '../support/cluster-up.js';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { freePort } from '../support/local.js';

const TOKENS = {
  read: 'read-token-0123456789abcdef',
  write: 'write-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
  /** Known to node 3 only. */
  threeOnly: 'three-only-token-0123456789',
};

let pki: TestPki;
let root = '';
let ca: Buffer;
const processes: Spawned[] = [];
const endpoints: string[] = [];

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

/**
 * One request, sent again while the node answers that there is no master right now and that
 * nothing was applied (an election under load): these tests are about who may do what, and an
 * election never answers 401 or 403.
 */
async function call(endpoint: string, method: string, path: string, token?: string, body?: unknown): Promise<Reply> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const reply = await callOnce(endpoint, method, path, token, body);
    const electing = reply.status === 503 && reply.body.mayHaveBeenApplied === false;
    if (!electing || Date.now() > deadline) return reply;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function callOnce(endpoint: string, method: string, path: string, token?: string, body?: unknown,
  identity?: { cert: Buffer; key: Buffer }, extraHeaders: Record<string, string> = {}): Promise<Reply> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(new URL(path, endpoint), {
      method, ca, timeout: 10_000, ...identity, agent: false,
      headers: {
        ...extraHeaders,
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length }),
      },
    }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown> = {};
        try { parsed = JSON.parse(text) as Record<string, unknown>; } catch { parsed = { text }; }
        resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, body: parsed });
      });
    });
    outgoing.on('error', reject);
    outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
    outgoing.end(payload);
  });
}

before(async () => {
  pki = await makeTestPki('http-security');
  ca = readFileSync(pki.ca.cert);
  // Not a tempRoot: that one is removed by an after hook that may run before ours has stopped the
  // nodes writing into it.
  root = await mkdtemp(join(tmpdir(), 'http-security-nodes-'));
  const common = join(root, 'tokens');
  await writeFile(common, `# roles\nread ${TOKENS.read}\nwrite ${TOKENS.write}\nadmin ${TOKENS.admin}\n`);
  const threeTokens = join(root, 'tokens-3');
  await writeFile(threeTokens, `read ${TOKENS.read}\nwrite ${TOKENS.write}\nadmin ${TOKENS.admin}\n`
    + `write ${TOKENS.threeOnly}\n`);
  const paxos: number[] = [];
  for (let id = 1; id <= 3; id++) paxos.push(await freePort());
  const peers = paxos.map((port, index) => `${index + 1}=127.0.0.1:${port}`).join(',');
  const https: number[] = [];
  for (let id = 1; id <= 3; id++) https.push(await freePort());
  const httpPeers = https.map((port, index) => `${index + 1}=127.0.0.1:${port}`).join(',');
  for (let id = 1; id <= 3; id++) {
    const files = await pki.node(id);
    const spawned = spawnCli(['kv', 'serve', '--id', String(id), '--listen', `127.0.0.1:${paxos[id - 1]}`,
      '--http', `127.0.0.1:${https[id - 1]}`, '--http-peers', httpPeers, '--peers', peers, '--data', join(root, `n${id}`), '--master-lease', '2000',
      '--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key,
      '--tokens', id === 3 ? threeTokens : common]);
    processes.push(spawned);
  }
  for (const spawned of processes) {
    const match = await spawned.waitFor(/serving (https:\/\/\S+)/, 20_000);
    endpoints.push(match[1] as string);
  }
  // Every group has a master that every node names.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const statuses = await Promise.all(endpoints.map((endpoint) => call(endpoint, 'GET', '/status', TOKENS.read)));
    const masters = statuses.map((reply) => JSON.stringify((reply.body.groups as { master?: unknown }[] | undefined)
      ?.map((group) => group.master ?? null)));
    if (statuses.every((reply) => reply.status === 200) && masters.every((text) => text === masters[0]) &&
      !(masters[0] ?? 'null').includes('null')) break;
    if (Date.now() > deadline) assert.fail(`no stable masters: ${masters.join(' | ')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});

after(async () => {
  for (const spawned of processes) spawned.child.kill('SIGTERM');
  await Promise.all(processes.map(async (spawned) => {
    if (await spawned.exitWithin(10_000) === undefined) spawned.kill();
    await spawned.exited;
  }));
  if (root !== '') await rm(root, { recursive: true, force: true });
});

test('/v1/cluster-status under TLS and tokens: every node up, asked over HTTPS with the node\'s certificate', async () => {
  for (const endpoint of endpoints) {
    const reply = await call(endpoint, 'GET', '/v1/cluster-status', TOKENS.read);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const nodes = reply.body.nodes as { nodeId: number; reachable: boolean; endpoint: string; error: string | null }[];
    assert.deepEqual(nodes.map((node) => [node.nodeId, node.reachable, node.error]),
      [[1, true, null], [2, true, null], [3, true, null]], JSON.stringify(nodes));
    for (const node of nodes) assert.match(node.endpoint, /^https:\/\//);
  }
  assert.equal((await call(endpoints[0]!, 'GET', '/v1/cluster-status')).status, 401);
  // The page holds no data: served without a token (it asks for one to fetch the report).
  const page = await call(endpoints[0]!, 'GET', '/ui');
  assert.equal(page.status, 200);
  assert.match(String(page.body.text), /id="token-form"/);
  // A node's certificate may read another node's /v1/node-status, and nothing else on its own.
  const files = await pki.node(2);
  const node2 = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  assert.equal((await callOnce(endpoints[0]!, 'GET', '/v1/node-status', undefined, undefined, node2)).status, 200);
  assert.equal((await callOnce(endpoints[0]!, 'GET', '/v1/kv/a', undefined, undefined, node2)).status, 401);
  assert.equal((await callOnce(endpoints[0]!, 'GET', '/v1/cluster-status', undefined, undefined, node2)).status, 401);
});

test('status --watch passes --token and --ca', async () => {
  const watch = spawnCli(['status', '--watch', '--json', '--interval-ms', '500', '--endpoints', endpoints[0]!,
    '--token', TOKENS.read, '--ca', pki.ca.cert]);
  try {
    const line = await watch.waitFor(/^\{.*\}$/m, 15_000);
    const view = JSON.parse(line[0]) as { servedBy?: number; nodes?: { reachable: boolean }[]; error?: string };
    assert.equal(view.servedBy, 1, line[0]);
    assert.deepEqual(view.nodes?.map((node) => node.reachable), [true, true, true]);
  } finally {
    watch.child.kill('SIGTERM');
    if (await watch.exitWithin(5_000) === undefined) watch.kill();
  }
});

test('the API is HTTPS only', async () => {
  const url = new URL(endpoints[0]!);
  const plain = await new Promise<string>((resolve) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, path: '/status', timeout: 5_000 },
      (incoming) => resolve(`answered ${incoming.statusCode}`));
    outgoing.on('error', (error) => resolve(`failed: ${error.message}`));
    outgoing.end();
  });
  assert.match(plain, /^(failed|answered 400)/, 'plain HTTP gets no answer from the API');
});

test('without a token every route is 401, /status and /metrics included', async () => {
  for (const [method, path] of [['GET', '/v1/kv/a'], ['PUT', '/v1/kv/a'], ['GET', '/status'], ['GET', '/metrics'],
    ['GET', '/v1/members'], ['POST', '/v1/master/drop'], ['GET', '/nowhere']] as const) {
    const reply = await call(endpoints[0]!, method, path, undefined, method === 'PUT' ? { value: 'x' } : undefined);
    assert.equal(reply.status, 401, `${method} ${path}`);
    assert.equal(reply.body.error, 'UNAUTHENTICATED');
    assert.match(String(reply.headers['www-authenticate']), /^Bearer/);
  }
  const wrong = await call(endpoints[0]!, 'GET', '/v1/kv/a', 'not-a-token-of-this-cluster');
  assert.equal(wrong.status, 401);
  assert.ok(!JSON.stringify(wrong.body).includes('not-a-token'), 'the token is not echoed');
});

test('a read token reads (stale or not) and gets 403 for a write', async () => {
  const write = await call(endpoints[0]!, 'PUT', '/v1/kv/r1', TOKENS.read, { value: 'x' });
  assert.equal(write.status, 403);
  assert.equal(write.body.error, 'FORBIDDEN');
  assert.equal(write.body.mayHaveBeenApplied, false);
  assert.equal((await call(endpoints[0]!, 'DELETE', '/v1/kv/r1', TOKENS.read)).status, 403);
  for (const path of ['/v1/kv/r1', '/v1/kv/r1?stale=true']) {
    const read = await call(endpoints[1]!, 'GET', path, TOKENS.read);
    assert.equal(read.status, 404, `${path}: ${JSON.stringify(read.body)}`);
    assert.equal(read.body.error, 'KEY_NOT_FOUND');
  }
  assert.equal((await call(endpoints[0]!, 'GET', '/status', TOKENS.read)).status, 200);
  // Refusals are counted in /metrics (the earlier tests refused requests at node 1 without a token).
  const metrics = String((await call(endpoints[0]!, 'GET', '/metrics', TOKENS.read)).body.text);
  const counted = (reason: string): number => Number(new RegExp(
    `^multipaxos_http_auth_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
  assert.ok(counted('unauthenticated') >= 7, metrics.slice(0, 300));
  assert.ok(counted('forbidden') >= 2);
});

test('a write token writes and gets 403 for membership, master and snapshot routes', async () => {
  const put = await call(endpoints[0]!, 'PUT', '/v1/kv/w1', TOKENS.write, { value: 'hello' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  for (const [method, path, body] of [['GET', '/v1/members', undefined], ['POST', '/v1/members', { add: 9 }],
    ['POST', '/v1/master/drop', undefined], ['POST', '/v1/snapshots', undefined]] as const) {
    const reply = await call(endpoints[0]!, method, path, TOKENS.write, body);
    assert.equal(reply.status, 403, `${method} ${path}`);
  }
});

test('an admin token may use the admin routes', async () => {
  const members = await call(endpoints[0]!, 'GET', '/v1/members', TOKENS.admin);
  assert.equal(members.status, 200, JSON.stringify(members.body));
  assert.deepEqual((members.body.members as { id: number }[]).map((member) => member.id).sort(), [1, 2, 3]);
  const master = await call(endpoints[0]!, 'GET', '/v1/master', TOKENS.admin);
  assert.equal(master.status, 200, JSON.stringify(master.body));
  const put = await call(endpoints[0]!, 'PUT', '/v1/kv/a1', TOKENS.admin, { value: 'admin writes too' });
  assert.equal(put.status, 200);
});

test('a forwarded request keeps the caller\'s role: the master authenticates the caller again', async () => {
  // Find keys that node 3 forwards (their group's master is another node).
  let forwardedKey: string | undefined;
  for (let i = 0; i < 40 && forwardedKey === undefined; i++) {
    const key = `fw${i}`;
    const reply = await call(endpoints[2]!, 'PUT', `/v1/kv/${key}`, TOKENS.write, { value: 'v' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    if (reply.headers['x-multipaxos-node'] !== '3') forwardedKey = key;
  }
  assert.ok(forwardedKey !== undefined, 'some key\'s master is not node 3');
  // A read token is refused by the first node; a token node 3 accepts but the master does not know
  // is forwarded and refused by the master (it answers, not node 3).
  const asReader = await call(endpoints[2]!, 'PUT', `/v1/kv/${forwardedKey}`, TOKENS.read, { value: 'no' });
  assert.equal(asReader.status, 403);
  const threeOnly = await call(endpoints[2]!, 'PUT', `/v1/kv/${forwardedKey}`, TOKENS.threeOnly, { value: 'no' });
  assert.equal(threeOnly.status, 401, JSON.stringify(threeOnly.body));
  assert.notEqual(threeOnly.headers['x-multipaxos-node'], '3', 'the master refused it');
  // Between nodes authenticated by their certificates (mutual TLS), forwards with a token go over
  // the nodes' own connection (the first to each master over HTTPS, while the master answers a hello).
  let overTransport = 0;
  for (let attempt = 0; attempt < 50 && overTransport === 0; attempt++) {
    const forwarded = await call(endpoints[2]!, 'GET', `/v1/kv/${forwardedKey}`, TOKENS.read);
    assert.equal(forwarded.status, 200, JSON.stringify(forwarded.body));
    const metrics = await call(endpoints[2]!, 'GET', '/metrics', TOKENS.read);
    const sample = /^multipaxos_kv_forwarded_over_transport_total (\d+)$/m.exec(String(metrics.body.text));
    overTransport = Number(sample?.[1]);
  }
  assert.ok(overTransport > 0, 'forwarded over the nodes\' mutual-TLS connection');
  const read = await call(endpoints[2]!, 'GET', `/v1/kv/${forwardedKey}`, TOKENS.read);
  assert.equal(read.body.value, 'v', 'nothing was written by the refused requests');
  // A caller cannot claim to be a forwarding node to skip anything: the header only stops a second hop.
  const forged = await new Promise<number>((resolve, reject) => {
    const outgoing = httpsRequest(new URL(`/v1/kv/${forwardedKey}`, endpoints[0]), {
      method: 'PUT', ca, headers: { 'x-multipaxos-forwarded-by': '2', 'content-type': 'application/json' },
    }, (incoming) => { incoming.resume(); resolve(incoming.statusCode ?? 0); });
    outgoing.on('error', reject);
    outgoing.end(JSON.stringify({ value: 'forged' }));
  });
  assert.equal(forged, 401);
});

test('a listing merges every group under the caller\'s token; opening a session needs write', async () => {
  const keys = ['ls-a', 'ls-b', 'ls-c', 'ls-d', 'ls-e', 'ls-f'];
  for (const key of keys) {
    const put = await call(endpoints[2]!, 'PUT', `/v1/kv/${key}`, TOKENS.write, { value: key });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  }
  // Node 3 reads the groups it is not master of from their masters, passing the caller's token on.
  const listed = await call(endpoints[2]!, 'GET', '/v1/kv?prefix=ls-', TOKENS.read);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  assert.deepEqual((listed.body.items as { key: string }[]).map((item) => item.key), keys);
  // A token node 3 knows and the other masters do not is refused by them: forwarding lends nothing.
  const threeOnly = await call(endpoints[2]!, 'GET', '/v1/kv?prefix=ls-', TOKENS.threeOnly);
  assert.equal(threeOnly.status, 401, JSON.stringify(threeOnly.body));
  assert.equal((await call(endpoints[0]!, 'GET', '/v1/kv?prefix=ls-')).status, 401);
  assert.equal((await call(endpoints[0]!, 'POST', '/v1/sessions?key=ls-a', TOKENS.read)).status, 403);
  const opened = await call(endpoints[0]!, 'POST', '/v1/sessions?key=ls-a', TOKENS.write);
  assert.equal(opened.status, 200, JSON.stringify(opened.body));
  assert.match(String(opened.body.session), /^\d+\.\d+$/);
});

test('KvClient with the CA and a token; with a read token its write fails as FORBIDDEN, not retried', async () => {
  const client = new KvClient({ endpoints, ca, token: TOKENS.write });
  const reader = new KvClient({ endpoints, ca, token: TOKENS.read });
  try {
    const { version } = await client.put('client-key', 'one');
    assert.equal((await reader.get('client-key')).value, 'one');
    await assert.rejects(reader.put('client-key', 'two', { version }),
      (error: { code?: string; mayHaveBeenApplied?: boolean }) =>
        error.code === 'FORBIDDEN' && error.mayHaveBeenApplied === false);
  } finally {
    client.close();
    reader.close();
  }
});

test('a watch over HTTPS with a read token sees the writes; without a token it is refused', async () => {
  const writer = new KvClient({ endpoints, ca, token: TOKENS.write });
  const reader = new KvClient({ endpoints, ca, token: TOKENS.read });
  const stop = new AbortController();
  try {
    const watch = reader.watch('watched-', { signal: stop.signal, heartbeatMs: 500 });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const event of watch) {
        seen.push(`${event.key}=${event.value}@${event.version}`);
        if (seen.length === 3) return;
      }
    })();
    // The watch starts from now: give it a moment to connect before writing.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await writer.put('watched-a', '1');
    await writer.put('watched-b', '2');
    await writer.put('watched-a', '3');
    await Promise.race([watching, new Promise((_, reject) => setTimeout(() => reject(new Error(`saw ${seen.join()}`)), 15_000))]);
    assert.deepEqual(seen.filter((item) => item.startsWith('watched-a')), ['watched-a=1@1', 'watched-a=3@2']);
    assert.ok(seen.includes('watched-b=2@1'), seen.join());
    assert.equal((await call(endpoints[0]!, 'GET', '/v1/watch?prefix=watched-')).status, 401);
  } finally {
    stop.abort();
    writer.close();
    reader.close();
  }
});

test('rotation: a node\'s new certificate serves new connections while writes go on, none failing', async () => {
  const serialAt = (endpoint: string): Promise<string> => new Promise((resolve, reject) => {
    const url = new URL(endpoint);
    const socket = connectTls({ host: url.hostname, port: Number(url.port), ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerX509Certificate()?.serialNumber ?? '');
      socket.destroy();
    });
    socket.on('error', reject);
  });
  const before = await serialAt(endpoints[0]!);
  const client = new KvClient({ endpoints, ca, token: TOKENS.write });
  let failures = 0;
  let writes = 0;
  let stop = false;
  const writer = (async () => {
    while (!stop) {
      try {
        await client.put(`rot${writes % 20}`, String(writes));
        writes++;
      } catch (error) {
        failures++;
        assert.fail(`a write failed during rotation: ${String(error)}`);
      }
    }
  })();
  try {
    const files = await pki.node(1);
    const fresh = await issueNodeCert(pki.ca, join(pki.dir, 'rotated-1'), 1);
    await rename(fresh.key, files.key);
    await rename(fresh.cert, files.cert);
    // kv serve polls every 2 s; give it a few polls.
    const deadline = Date.now() + 10_000;
    let after = before;
    while (after === before && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      after = await serialAt(endpoints[0]!);
    }
    assert.notEqual(after, before, 'new connections get the new certificate');
    const writesAtRotation = writes;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.ok(writes > writesAtRotation, 'writes go on after the rotation');
  } finally {
    stop = true;
    await writer;
    client.close();
  }
  assert.equal(failures, 0);
  assert.ok(writes > 10, `${writes} writes`);
});

test('a client certificate with a role authenticates instead of a token; forwarding carries its role', async () => {
  const dir = join(root, 'clients');
  const load = async (role: 'read' | 'write') => {
    const files = await issueClientCert(pki.ca, dir, `app-${role}`, { role });
    return { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  };
  const writer = await load('write');
  const reader = await load('read');
  const attempt = async (endpoint: string, method: string, path: string, identity: { cert: Buffer; key: Buffer },
    body?: unknown, headers?: Record<string, string>): Promise<Reply> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const reply = await callOnce(endpoint, method, path, undefined, body, identity, headers);
      if (!(reply.status === 503 && reply.body.mayHaveBeenApplied === false) || Date.now() > deadline) return reply;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  assert.equal((await attempt(endpoints[0]!, 'PUT', '/v1/kv/cert-key', writer, { value: 'by cert' })).status, 200);
  assert.equal((await attempt(endpoints[1]!, 'GET', '/v1/kv/cert-key', reader)).body.value, 'by cert');
  assert.equal((await attempt(endpoints[1]!, 'PUT', '/v1/kv/cert-key', reader, { value: 'no' })).status, 403);
  assert.equal((await attempt(endpoints[0]!, 'GET', '/v1/members', writer)).status, 403);
  // Claiming a forwarded admin role is believed only from a node's certificate.
  const forged = await attempt(endpoints[0]!, 'GET', '/v1/members', writer, undefined,
    { 'x-multipaxos-forwarded-role': 'admin', 'x-multipaxos-forwarded-by': '2' });
  assert.equal(forged.status, 403);
  // Through node 3 to the master of a key whose master is another node: the forwarded request has
  // no token and node 3's certificate grants no role of its own, so the master's 200 is the
  // caller's role, carried over node 3's certificate; a reader is refused (by node 3 already).
  for (let i = 0; i < 40; i++) {
    const reply = await attempt(endpoints[2]!, 'PUT', `/v1/kv/cert-fw${i}`, writer, { value: 'fw' });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    if (reply.headers['x-multipaxos-node'] === '3') continue;
    const refused = await attempt(endpoints[2]!, 'PUT', `/v1/kv/cert-fw${i}`, reader, { value: 'no' });
    assert.equal(refused.status, 403);
    return;
  }
  assert.fail('no key of a group whose master is not node 3');
});
