// PeerForwarder alone, over an in-memory channel between two "nodes": a peer is used only once it
// answered a hello; each request waits for its own reply (matched by id and by the peer asked), at
// most until its deadline (TIMEOUT, maybe applied only for a write, and the peer unproven again),
// or until its caller goes away; a channel that cannot send means "take another way" (undefined).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplicationChannel } from '../../src/node/node-transport.js';
import { KvError } from '../../src/kv/kv-error.js';
import {
  CONNECTION_CHECK_MS, MAX_REPLY_BODY_BYTES, MAX_SERVING_PER_PEER, PeerForwarder, type ForwardedRequestServer,
} from '../../src/kv/peer-forward.js';
import { isRetriedRefusal } from '../../src/kv/master-wait.js';
import { encodeForwardReply, encodeForwardRequest } from '../../src/kv/peer-forward-codec.js';

/** Channels of nodes 1 and 2 wired to each other; delivery is asynchronous, like a socket's. */
type TestChannel = ApplicationChannel & { up: boolean; connection: object };

/** `connection`: the current connection's token; replace it to stand for a reconnect. */
function channelPair(): { one: TestChannel; two: TestChannel } {
  const handlers = new Map<number, (from: number, body: Uint8Array) => void>();
  const make = (self: number, peer: number): TestChannel => ({
    up: true,
    connection: {},
    certifiedPeers: false,
    peerHosts: () => ['127.0.0.1'],
    connectionOf(to) {
      return this.up && to === peer ? this.connection : undefined;
    },
    send(to, body) {
      if (!this.up || to !== peer) return false;
      const copy = Buffer.from(body);
      setImmediate(() => handlers.get(peer)?.(self, copy));
      return true;
    },
    onReceive(handler) {
      handlers.set(self, handler);
    },
  });
  return { one: make(1, 2), two: make(2, 1) };
}

const echo: ForwardedRequestServer = async (from, request) => ({
  status: 200, headers: { 'x-from': String(from) }, body: Buffer.from(`${request.method} ${request.path}`),
});

async function proven(forwarder: PeerForwarder, to: number): Promise<void> {
  assert.equal(forwarder.proven(to), false);
  assert.equal(forwarder.forward(to, { timeoutMs: 100, method: 'GET', path: '/v1/kv/k', isWrite: false }), undefined,
    'an unproven peer is not asked');
  const deadline = Date.now() + 5_000;
  while (!forwarder.proven(to)) {
    if (Date.now() > deadline) assert.fail('the hello was never answered');
    await sleep(2);
  }
}

test('after a hello, requests go and their replies come back, matched by id', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const master = new PeerForwarder(two, echo);
  await proven(asker, 2);
  const replies = await Promise.all([1, 2, 3].map((index) => asker.forward(2, {
    timeoutMs: 1_000, method: 'PUT', path: `/v1/kv/k${index}`, isWrite: true, body: Buffer.from('{}') })));
  assert.deepEqual(replies.map((reply) => reply?.body.toString()), ['PUT /v1/kv/k1', 'PUT /v1/kv/k2', 'PUT /v1/kv/k3']);
  assert.equal(replies[0]?.headers['x-from'], '1', 'the master saw the asker\'s node id');
  assert.equal(asker.counters.answered, 3);
  assert.equal(master.counters.served, 3);
  // The master learned from the hello that node 1 speaks the protocol too.
  const back = master.forward(1, { timeoutMs: 1_000, method: 'GET', path: '/v1/kv/x', isWrite: false });
  assert.notEqual(back, undefined);
  assert.equal((await back)?.body.toString(), 'GET /v1/kv/x');
  asker.close();
  master.close();
});

test('no reply in time: TIMEOUT (maybe applied for a write only); a write\'s leaves the peer unproven', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  // A master that never answers.
  const silent = new PeerForwarder(two, () => new Promise(() => {}));
  await proven(asker, 2);
  const began = performance.now();
  await assert.rejects(asker.forward(2, { timeoutMs: 80, method: 'PUT', path: '/v1/kv/k', isWrite: true }) as Promise<unknown>,
    (error: unknown) => error instanceof KvError && error.code === 'TIMEOUT' && error.mayHaveBeenApplied);
  assert.ok(performance.now() - began >= 70);
  await proven(asker, 2);
  await assert.rejects(asker.forward(2, { timeoutMs: 80, method: 'GET', path: '/v1/kv/k', isWrite: false }, 120) as
    Promise<unknown>, (error: unknown) => error instanceof KvError && error.code === 'TIMEOUT' && !error.mayHaveBeenApplied);
  assert.equal(asker.counters.timedOut, 2);
  // A read waits one short attempt by design (master-wait.ts): a master slow to read keeps the path.
  assert.equal(asker.proven(2), true, 'a read\'s timeout leaves the peer proven');
  asker.close();
  silent.close();
});

test('a reply for no waiting request, or from another peer than the one asked, is dropped and counted', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const slow = new PeerForwarder(two, async (from, request) => {
    await sleep(50);
    return echo(from, request, false);
  });
  await proven(asker, 2);
  const waiting = asker.forward(2, { timeoutMs: 1_000, method: 'GET', path: '/v1/kv/k', isWrite: false });
  // Node 2 sends a reply with an id nobody waits for.
  two.send(1, encodeForwardReply({ id: 999_999, status: 200, headers: {}, body: Buffer.alloc(0) }));
  assert.equal((await waiting)?.status, 200);
  assert.equal(asker.counters.unexpected, 1);
  asker.close();
  slow.close();
});

test('the caller goes away: ABORTED at once; a channel that cannot send: undefined (another way)', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const silent = new PeerForwarder(two, () => new Promise(() => {}));
  await proven(asker, 2);
  const abort = new AbortController();
  const waiting = asker.forward(2, { timeoutMs: 5_000, method: 'PUT', path: '/v1/kv/k', isWrite: true,
    signal: abort.signal });
  abort.abort();
  await assert.rejects(waiting as Promise<unknown>, (error: unknown) => error instanceof KvError && error.code === 'ABORTED');
  one.up = false;
  assert.equal(asker.forward(2, { timeoutMs: 100, method: 'GET', path: '/v1/kv/k', isWrite: false }), undefined);
  asker.close();
  silent.close();
});

test('a peer gets at most MAX_SERVING_PER_PEER requests served at once; beyond, OVERLOADED, not applied', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const held: (() => void)[] = [];
  const master = new PeerForwarder(two, (from, request) => new Promise((resolve) => {
    held.push(() => resolve({ status: 200, headers: {}, body: Buffer.from(request.path) }));
  }));
  await proven(asker, 2);
  const waiting = Array.from({ length: MAX_SERVING_PER_PEER }, (_, i) =>
    asker.forward(2, { timeoutMs: 10_000, method: 'PUT', path: `/v1/kv/k${i}`, isWrite: true }));
  const refused = asker.forward(2, { timeoutMs: 10_000, method: 'PUT', path: '/v1/kv/one-too-many', isWrite: true });
  const reply = await refused;
  assert.equal(reply?.status, 429);
  assert.deepEqual(JSON.parse(reply?.body.toString() ?? ''), {
    error: 'OVERLOADED', message: 'this node serves too many requests forwarded by that node', mayHaveBeenApplied: false });
  assert.equal(held.length, MAX_SERVING_PER_PEER, 'the one beyond was never handed to the service');
  assert.equal(master.counters.overloaded, 1);
  // Once they are answered, the peer is served again.
  for (const release of held.splice(0)) release();
  assert.equal((await waiting[0])?.status, 200);
  await Promise.all(waiting);
  const again = asker.forward(2, { timeoutMs: 10_000, method: 'PUT', path: '/v1/kv/later', isWrite: true });
  while ((held.length as number) === 0) await sleep(2);
  for (const release of held.splice(0)) release();
  assert.equal((await again)?.status, 200);
  asker.close();
  master.close();
});

test('a service that fails (it must not, but if it did) still gives the peer its serving slot back', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  let failing = true;
  const master = new PeerForwarder(two, async (from, request) => {
    if (failing) throw new Error('a bug in the service');
    return { status: 200, headers: {}, body: Buffer.from(request.path) };
  });
  await proven(asker, 2);
  // Every slot is taken by a request whose serving fails; the asker is left to time out on each.
  const lost = Array.from({ length: MAX_SERVING_PER_PEER }, (_, i) =>
    asker.forward(2, { timeoutMs: 200, method: 'GET', path: `/v1/kv/k${i}`, isWrite: false }));
  const outcomes = await Promise.allSettled(lost);
  assert.ok(outcomes.every((outcome) => outcome.status === 'rejected'), 'no answer came for any of them');
  assert.equal(master.counters.unsent, MAX_SERVING_PER_PEER);
  failing = false;
  assert.equal(asker.proven(2), true, 'reads that timed out leave the peer proven');
  const reply = await asker.forward(2, { timeoutMs: 5_000, method: 'GET', path: '/v1/kv/after', isWrite: false });
  assert.equal(reply?.status, 200, 'served: the failed requests gave their slots back');
  assert.equal(master.counters.overloaded, 0);
  asker.close();
  master.close();
});

test('a reply too large for a frame: a read is asked again over HTTP, a write fails at once (maybe applied); no TIMEOUT', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const large = Buffer.alloc(MAX_REPLY_BODY_BYTES + 1, 0x61);
  const master = new PeerForwarder(two, async () => ({ status: 200, headers: {}, body: large }));
  await proven(asker, 2);
  const began = performance.now();
  const read = await asker.forward(2, { timeoutMs: 5_000, method: 'GET', path: '/v1/kv/big', isWrite: false });
  assert.equal(read, undefined, 'undefined: ask over HTTP');
  const write = await asker.forward(2, { timeoutMs: 5_000, method: 'PUT', path: '/v1/kv/big', isWrite: true });
  assert.equal(write?.status, 500, 'a write is never asked twice: its failure says it may have been applied');
  assert.deepEqual(JSON.parse(write?.body.toString() ?? ''), { error: 'INTERNAL',
    message: 'the reply could not be sent over the nodes\' connection', mayHaveBeenApplied: true });
  assert.ok(performance.now() - began < 2_000, 'answered, not left to time out');
  assert.equal(asker.counters.timedOut, 0);
  assert.equal(master.counters.replaced, 2);
  assert.equal(asker.proven(2), true, 'the master is not held back from');
  asker.close();
  master.close();
});

test('a request the encoder refuses (a field too long) is not sent: undefined, another way', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const master = new PeerForwarder(two, echo);
  await proven(asker, 2);
  const sent = asker.counters.sent;
  assert.equal(asker.forward(2, { timeoutMs: 1_000, method: 'GET', path: `/v1/kv/${'k'.repeat(70_000)}`,
    isWrite: false }), undefined);
  assert.equal(asker.counters.sent, sent);
  asker.close();
  master.close();
});

test('after close, a request that arrives is not served', async () => {
  const { one, two } = channelPair();
  let served = 0;
  const master = new PeerForwarder(two, async (from, request) => {
    served++;
    return echo(from, request, false);
  });
  master.close();
  one.send(2, encodeForwardRequest({ id: 7, timeoutMs: 1_000, method: 'PUT', path: '/v1/kv/k', body: Buffer.from('{}') }));
  await sleep(20);
  assert.equal(served, 0);
  assert.equal(master.counters.served, 0);
});

test('the connection to the master goes down before the reply: UNAVAILABLE at once, a write maybe applied', async () => {
  const { one, two } = channelPair();
  const asker = new PeerForwarder(one, echo);
  const silent = new PeerForwarder(two, () => new Promise(() => {}));
  await proven(asker, 2);
  const forwardBoth = (): [Promise<unknown>, Promise<unknown>] => [
    asker.forward(2, { timeoutMs: 10_000, method: 'PUT', path: '/v1/kv/k', isWrite: true }) as Promise<unknown>,
    asker.forward(2, { timeoutMs: 10_000, method: 'GET', path: '/v1/kv/k', isWrite: false }) as Promise<unknown>,
  ];
  const lost = async ([write, read]: [Promise<unknown>, Promise<unknown>]): Promise<void> => {
    const began = performance.now();
    await assert.rejects(write, (error: unknown) => error instanceof KvError && error.code === 'UNAVAILABLE' &&
      error.mayHaveBeenApplied);
    // A read changed nothing: the plain request it came from may try again (master-wait.ts).
    await assert.rejects(read, (error: unknown) => error instanceof KvError && error.code === 'UNAVAILABLE' &&
      !error.mayHaveBeenApplied && isRetriedRefusal(error));
    // Within a check or two (with room for a loaded machine), far from the 10 s deadline.
    assert.ok(performance.now() - began < CONNECTION_CHECK_MS * 8, 'not held to the deadline');
  };
  // The master's process died: no connection.
  let waiting = forwardBoth();
  await sleep(CONNECTION_CHECK_MS * 2);
  one.up = false;
  await lost(waiting);
  assert.equal(asker.counters.connectionLost, 2);
  one.up = true;
  // It restarted at once: a new connection, to a process that never saw the requests. They fail
  // the same way, and the peer must answer a hello on the new connection before it is asked again.
  assert.equal(asker.proven(2), true);
  waiting = forwardBoth();
  await sleep(CONNECTION_CHECK_MS * 2);
  one.connection = {};
  assert.equal(asker.proven(2), false, 'proven on the old connection only');
  await lost(waiting);
  assert.equal(asker.counters.connectionLost, 4);
  await proven(asker, 2);
  asker.close();
  silent.close();
});
