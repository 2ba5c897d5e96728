// Forwarding over the nodes' own transport connection, on a real 3-node cluster in this process
// (real TCP between the nodes, real files, real HTTP): a request for a key whose master is another
// node goes to it as an application frame and comes back the same way; when that connection is
// down the node forwards over HTTP instead; the master authenticates the caller's token again;
// a session write forwarded twice is applied once; frames that do not decode are counted and change
// nothing.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemberAddress } from '../../src/index.js';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { KvService } from '../../src/kv/kv-service.js';
import type { PeerForwarder } from '../../src/kv/peer-forward.js';
import { TokenStore } from '../../src/security/tokens.js';
import { freePort, tempRoot } from '../support/local.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';

const READ_TOKEN = 'read-token-0123456789abcdef';
const WRITE_TOKEN = 'write-token-0123456789abcdef';

/** Node 1's transport connections leave from this loopback address, so a relay can tell them apart. */
const NODE_ONE_ADDRESS = '127.0.0.11';

interface Cluster {
  readonly services: KvService[];
  readonly servers: KvHttpServer[];
  /** Nodes 2 and 3 are reached through these relays. */
  readonly relays: TcpRelay[];
  stop(): Promise<void>;
}

let cluster: Cluster;

before(async () => {
  const root = await tempRoot('peer-forward');
  const tokens = join(root, 'tokens');
  await writeFile(tokens, `read ${READ_TOKEN}\nwrite ${WRITE_TOKEN}\n`, { mode: 0o600 });
  const ports = [await freePort(), await freePort(), await freePort()];
  const relays = [await startTcpRelay(ports[1] as number), await startTcpRelay(ports[2] as number)];
  // Node 1 dials nodes 2 and 3 (the lower id dials), node 2 dials node 3, all through the relays
  // (the members' addresses); node 1 dials from its own address, so its connections can be cut alone.
  const members: MemberAddress[] = [
    { id: 1, host: '127.0.0.1', port: ports[0] as number },
    { id: 2, host: '127.0.0.1', port: relays[0]?.port as number },
    { id: 3, host: '127.0.0.1', port: relays[1]?.port as number },
  ];
  const servers = await Promise.all([1, 2, 3].map(() => KvHttpServer.listen({
    host: '127.0.0.1', port: 0, tokens: TokenStore.open(tokens),
  })));
  const services = await Promise.all(members.map(({ id }, index) => KvService.start({
    nodeId: id, members, dataDir: join(root, `n${id}`), groups: 3, masterLeaseMs: 2_000,
    httpEndpoint: (servers[index] as KvHttpServer).endpoint,
    // Nodes 2 and 3 listen on their own ports; the others know them by their relays'.
    ...(id === 1 ? { localAddress: NODE_ONE_ADDRESS } : { listen: { host: '127.0.0.1', port: ports[id - 1] as number } }),
  })));
  services.forEach((service, index) => servers[index]?.attach(service));
  cluster = {
    services, servers, relays,
    async stop() {
      await Promise.all(servers.map((server) => server.close()));
      await Promise.all(services.map((service) => service.stop()));
      await Promise.all(relays.map((each) => each.close()));
    },
  };
});

after(async () => {
  await cluster?.stop();
});

/**
 * A key of a group whose master is another node than node 1, once every node knows that master's
 * endpoint, and that master.
 */
async function keyMasteredElsewhere(prefix: string): Promise<{ key: string; master: number }> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const statuses = cluster.services.map((service) => service.status());
    for (const master of [2, 3]) {
      const group = statuses[master - 1]?.find((status) => status.serving)?.group;
      if (group !== undefined && statuses.every((groups) => groups[group]?.master?.endpoint !== undefined &&
        groups[group]?.master?.nodeId === master)) {
        for (let i = 0; ; i++) {
          if (cluster.services[0]?.groupOf(`${prefix}${i}`) === group) return { key: `${prefix}${i}`, master };
        }
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`neither node 2 nor 3 serves a group with every node knowing it: ${JSON.stringify(statuses.map(
        (groups) => groups.map((status) => [status.master?.nodeId, status.serving, status.master?.endpoint !== undefined])))}`);
    }
    await sleep(50);
  }
}

async function call(node: number, method: string, key: string, options: { token?: string; body?: unknown;
  headers?: Record<string, string> } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const server = cluster.servers[node - 1] as KvHttpServer;
  const response = await fetch(`${server.endpoint}/v1/kv/${encodeURIComponent(key)}`, {
    method, headers: { authorization: `Bearer ${options.token ?? WRITE_TOKEN}`, ...options.headers },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

/** Until a forward from node 1 to `to` goes over the transport (the first one proves the peer). */
async function provenOverTransport(to: number, key: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const before = cluster.servers[0]?.requests.forwardedOverTransport ?? 0;
    assert.equal((await call(1, 'GET', key, { token: READ_TOKEN })).status < 500, true);
    if ((cluster.servers[0]?.requests.forwardedOverTransport ?? 0) > before) return;
    await sleep(50);
  }
  assert.fail(`forwards from node 1 to node ${to} never went over the transport`);
}

test('every node answers writes and reads of every key; forwards go over the transport', async () => {
  const { key, master } = await keyMasteredElsewhere('any-');
  await provenOverTransport(master, key);
  const before = cluster.servers[0]?.requests.forwardedOverTransport ?? 0;
  for (let round = 1; round <= 5; round++) {
    const put = await call(1, 'PUT', key, { body: { value: `v${round}` } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.key, key);
    for (const node of [1, 2, 3]) {
      const got = await call(node, 'GET', key, { token: READ_TOKEN });
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.value, `v${round}`, `node ${node} reads what was written`);
      assert.equal(got.body.version, put.body.version);
    }
  }
  // Node 1 forwarded its 5 puts and 5 reads over the transport.
  assert.ok((cluster.servers[0]?.requests.forwardedOverTransport ?? 0) - before >= 10);
  // A conditional write's refusal comes back whole: status, code and the current version.
  const conflict = await call(1, 'PUT', key, { body: { value: 'late', version: 1 } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error, 'VERSION_CONFLICT');
  assert.equal(conflict.body.mayHaveBeenApplied, false);
});

test('tokens: the master authenticates the caller again; a read token cannot write, an unknown one is refused', async () => {
  const { key, master } = await keyMasteredElsewhere('auth-');
  await provenOverTransport(master, key);
  // Through HTTP the first node already refuses; the master's own check is what a forged or
  // replayed frame meets, so ask it directly over node 1's transport forwarder.
  const forwarder = (cluster.servers[0] as unknown as { peers: PeerForwarder }).peers;
  const ask = async (authorization: string | undefined, method: 'PUT' | 'GET') => {
    const sent = forwarder.forward(master, {
      timeoutMs: 3_000, method, path: `/v1/kv/${key}`, isWrite: method === 'PUT',
      ...(authorization === undefined ? {} : { authorization }),
      ...(method === 'PUT' ? { body: Buffer.from('{"value":"forged"}') } : {}),
    });
    assert.ok(sent !== undefined, 'the master is reachable over the transport');
    const reply = await sent;
    assert.ok(reply !== undefined);
    return { status: reply.status, body: JSON.parse(reply.body.toString()) as Record<string, unknown> };
  };
  const masterForbidden = cluster.servers[master - 1]?.requests.forbidden ?? 0;
  const asRead = await ask(`Bearer ${READ_TOKEN}`, 'PUT');
  assert.equal(asRead.status, 403);
  assert.equal(asRead.body.error, 'FORBIDDEN');
  assert.equal(cluster.servers[master - 1]?.requests.forbidden, masterForbidden + 1, 'the master refused it');
  assert.equal((await ask('Bearer not-a-token-of-this-cluster', 'PUT')).status, 401);
  assert.equal((await ask(undefined, 'PUT')).status, 401, 'no token, no role');
  // A role claimed without a certificate-authenticated peer is not believed either.
  const claimed = forwarder.forward(master, { timeoutMs: 3_000, method: 'PUT', path: `/v1/kv/${key}`, isWrite: true,
    callerRole: 'admin', body: Buffer.from('{"value":"forged"}') });
  assert.equal((await claimed)?.status, 401);
  assert.equal((await ask(`Bearer ${READ_TOKEN}`, 'GET')).status, 404, 'a read token reads (the key is not set)');
  const got = await call(master, 'GET', key, { token: READ_TOKEN });
  assert.equal(got.status, 404, 'no forged write was applied');
  // End to end: a write token's put through node 1 is applied by the master.
  assert.equal((await call(1, 'PUT', key, { body: { value: 'ok' } })).status, 200);
  assert.equal((await call(master, 'GET', key, { token: READ_TOKEN })).body.value, 'ok');
});

test('a session write forwarded twice is applied once, the retry answered as the first time', async () => {
  const { key, master } = await keyMasteredElsewhere('session-');
  await provenOverTransport(master, key);
  const server = cluster.servers[0] as KvHttpServer;
  const opened = await fetch(`${server.endpoint}/v1/sessions?key=${key}`, {
    method: 'POST', headers: { authorization: `Bearer ${WRITE_TOKEN}` } });
  assert.equal(opened.status, 200);
  const { session } = await opened.json() as { session: string };
  const headers = { 'x-multipaxos-session': session, 'x-multipaxos-sequence': '1' };
  const before = server.requests.forwardedOverTransport;
  const first = await call(1, 'PUT', key, { body: { value: 'once' }, headers });
  const again = await call(2, 'PUT', key, { body: { value: 'once' }, headers });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.version, first.body.version);
  assert.equal(again.body.duplicate, true);
  assert.ok(server.requests.forwardedOverTransport > before, 'the first went over the transport');
  const got = await call(master, 'GET', key, { token: READ_TOKEN });
  assert.equal(got.body.version, first.body.version, 'applied once');
});

test('malformed frames are counted and dropped; the node serves on', async () => {
  const { key, master } = await keyMasteredElsewhere('malformed-');
  await provenOverTransport(master, key);
  const channel = cluster.services[0]?.node.applicationChannel;
  assert.ok(channel !== undefined);
  const forwarder = (cluster.servers[master - 1] as unknown as { peers: PeerForwarder }).peers;
  const malformed = forwarder.counters.malformed;
  for (const bytes of [[], [1], [1, 0, 0, 0, 1, 5], [200, 1, 2, 3, 4], [2, 1, 0, 0, 0, 0xc8, 0]]) {
    assert.equal(channel.send(master, Buffer.from(bytes)), true);
  }
  const unexpected = forwarder.counters.unexpected;
  // A well-formed reply that no request of the master waits for.
  const { encodeForwardReply } = await import('../../src/kv/peer-forward-codec.js');
  channel.send(master, encodeForwardReply({ id: 123_456, status: 200, headers: {}, body: Buffer.from('{}') }));
  const deadline = Date.now() + 5_000;
  while ((forwarder.counters.malformed < malformed + 5 || forwarder.counters.unexpected < unexpected + 1) &&
    Date.now() < deadline) await sleep(10);
  assert.equal(forwarder.counters.malformed, malformed + 5);
  assert.equal(forwarder.counters.unexpected, unexpected + 1);
  const put = await call(1, 'PUT', key, { body: { value: 'after' } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
});

test('with the connection to the master down, a node forwards over HTTP; back up, over the transport again',
  async () => {
    const { key, master } = await keyMasteredElsewhere('fallback-');
    await provenOverTransport(master, key);
    const server = cluster.servers[0] as KvHttpServer;
    const cut = cluster.relays[master - 2] as TcpRelay;
    cut.cut(NODE_ONE_ADDRESS);
    try {
      const deadline = Date.now() + 5_000;
      while (cluster.services[0]?.node.metrics().transport !== undefined &&
        ((cluster.services[0].node.metrics().transport as { peers: { nodeId: number; connected: boolean }[] }).peers
          .find((peer) => peer.nodeId === master)?.connected ?? false) && Date.now() < deadline) await sleep(10);
      const overTransport = server.requests.forwardedOverTransport;
      const forwarded = server.requests.forwarded;
      for (let i = 0; i < 5; i++) {
        const put = await call(1, 'PUT', key, { body: { value: `cut-${i}` } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
      }
      assert.equal(server.requests.forwardedOverTransport, overTransport, 'none over the cut connection');
      assert.ok(server.requests.forwarded >= forwarded + 5, 'all forwarded, over HTTP');
      assert.equal((await call(master, 'GET', key, { token: READ_TOKEN })).body.value, 'cut-4');
    } finally {
      cut.heal();
    }
    await provenOverTransport(master, key);
  });

test('bodies above 64 KiB go over HTTP; a read whose reply is that large is asked again over HTTP', async () => {
  const { key, master } = await keyMasteredElsewhere('large-');
  await provenOverTransport(master, key);
  const server = cluster.servers[0] as KvHttpServer;
  const masterForwarder = (cluster.servers[master - 1] as unknown as { peers: PeerForwarder }).peers;
  const value = 'v'.repeat(70 * 1024);
  const overTransport = server.requests.forwardedOverTransport;
  const forwarded = server.requests.forwarded;
  const put = await call(1, 'PUT', key, { body: { value } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(server.requests.forwardedOverTransport, overTransport, 'the large body did not go over the transport');
  assert.equal(server.requests.forwarded, forwarded + 1, 'it went over HTTP');
  const replaced = masterForwarder.counters.replaced;
  const got = await call(1, 'GET', key, { token: READ_TOKEN });
  assert.equal(got.status, 200, JSON.stringify(got.body).slice(0, 200));
  assert.equal(got.body.value, value);
  assert.equal(masterForwarder.counters.replaced, replaced + 1, 'the master answered "ask over HTTP"');
  assert.equal(masterForwarder.proven(1), true);
  assert.equal(server.requests.forwardedOverTransport, overTransport + 1, 'the read was sent over the transport');
  assert.equal(server.requests.forwarded, forwarded + 2, 'and then answered over HTTP, within the same forward');
});

test('a hostile reply (CR LF in a passed-on header, a 1xx status) is dropped; the forwarding node answers and lives',
  async () => {
    const { key, master } = await keyMasteredElsewhere('hostile-');
    await provenOverTransport(master, key);
    const asker = (cluster.servers[0] as unknown as { peers: PeerForwarder }).peers;
    const masterForwarder = cluster.servers[master - 1] as unknown as { peers: { serve: unknown } };
    const honest = masterForwarder.peers.serve;
    const hostile = [
      { status: 200, headers: { 'x-multipaxos-node': '2\r\nset-cookie: stolen=1' }, body: Buffer.from('{}') },
      { status: 101, headers: {}, body: Buffer.from('{}') },
    ];
    try {
      for (const reply of hostile) {
        await provenOverTransport(master, key);
        masterForwarder.peers.serve = async () => reply;
        const malformed = asker.counters.malformed;
        const answer = await call(1, 'GET', key, { token: READ_TOKEN, headers: { 'x-multipaxos-timeout-ms': '1000' } });
        assert.equal(answer.status, 504, JSON.stringify(answer.body));
        assert.equal(answer.body.error, 'TIMEOUT');
        assert.equal(asker.counters.malformed, malformed + 1, 'the reply was dropped as malformed');
        masterForwarder.peers.serve = honest;
        // Node 1 timed out on the master, so it holds back from it for a second.
        await sleep(1_100);
      }
    } finally {
      masterForwarder.peers.serve = honest;
    }
    assert.equal((await call(1, 'GET', key, { token: READ_TOKEN })).status, 404, 'node 1 still serves');
    await provenOverTransport(master, key);
  });

test('the master moves while clients write through another node with sessions: nothing lost, nothing twice',
  async () => {
    const { key: probe, master: first } = await keyMasteredElsewhere('moving-');
    await provenOverTransport(first, probe);
    const group = cluster.services[0]?.groupOf(probe) as number;
    const server = cluster.servers[0] as KvHttpServer;
    const keys: string[] = [];
    for (let i = 0; keys.length < 4; i++) {
      if (cluster.services[0]?.groupOf(`moving-w${i}`) === group) keys.push(`moving-w${i}`);
    }
    const retried: string[] = [];
    let writing = true;
    const writer = async (key: string): Promise<{ acknowledged: number; last: string }> => {
      const opened = await fetch(`${server.endpoint}/v1/sessions?key=${key}`, {
        method: 'POST', headers: { authorization: `Bearer ${WRITE_TOKEN}` } });
      assert.equal(opened.status, 200);
      const { session } = await opened.json() as { session: string };
      let acknowledged = 0;
      let last = '';
      for (let sequence = 1; writing; sequence++) {
        const value = `${key}-${sequence}`;
        // The same sequence number until it is answered: applied at most once, so exactly once.
        for (;;) {
          const put = await call(1, 'PUT', key, { body: { value },
            headers: { 'x-multipaxos-session': session, 'x-multipaxos-sequence': String(sequence),
              'x-multipaxos-timeout-ms': '3000' } }).catch((error: unknown) => ({ status: 0, body: { error: String(error) } }));
          if (put.status === 200) break;
          assert.ok(![400, 401, 403, 409, 410].includes(put.status), `${key} #${sequence}: ${JSON.stringify(put.body)}`);
          retried.push(`${put.status} ${String(put.body.error)}`);
          await sleep(20);
        }
        acknowledged = sequence;
        last = value;
      }
      return { acknowledged, last };
    };
    const writers = keys.map((key) => writer(key));
    const masters = new Set<number>();
    for (let move = 0; move < 3; move++) {
      await sleep(700);
      const master = cluster.services[0]?.masterHint(group)?.nodeId;
      if (master !== undefined) {
        masters.add(master);
        cluster.services[master - 1]?.node.dropMaster(group);
      }
    }
    await sleep(700);
    writing = false;
    const results = await Promise.all(writers);
    for (const [index, key] of keys.entries()) {
      const { acknowledged, last } = results[index] as { acknowledged: number; last: string };
      assert.ok(acknowledged > 0, `${key}: some writes went through`);
      const got = await call(1, 'GET', key, { token: READ_TOKEN });
      assert.equal(got.status, 200, JSON.stringify(got.body));
      // Every applied write raises the version by one: as many versions as acknowledged writes.
      assert.equal(got.body.version, acknowledged, `${key}: no write lost or applied twice (retries: ${retried.length})`);
      assert.equal(got.body.value, last);
    }
    assert.ok(masters.size >= 1, 'the master was dropped');
  });
