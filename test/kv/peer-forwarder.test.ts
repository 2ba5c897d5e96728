// PeerForwarder alone, over an in-memory channel between two "nodes": a peer is used only once it
// answered a hello; each request waits for its own reply (matched by id and by the peer asked), at
// most until its deadline (TIMEOUT, maybe applied only for a write, and the peer unproven again),
// or until its caller goes away; a channel that cannot send means "take another way" (undefined).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplicationChannel } from '../../src/node/node-transport.js';
import { KvError } from '../../src/kv/kv-error.js';
import { PeerForwarder, type ForwardedRequestServer } from '../../src/kv/peer-forward.js';
import { encodeForwardReply } from '../../src/kv/peer-forward-codec.js';

/** Channels of nodes 1 and 2 wired to each other; delivery is asynchronous, like a socket's. */
function channelPair(): { one: ApplicationChannel & { up: boolean }; two: ApplicationChannel & { up: boolean } } {
  const handlers = new Map<number, (from: number, body: Uint8Array) => void>();
  const make = (self: number, peer: number): ApplicationChannel & { up: boolean } => ({
    up: true,
    certifiedPeers: false,
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

test('no reply in time: TIMEOUT (maybe applied for a write only), then the peer is unproven again', async () => {
  const { one, two } = channelPair();
  const timedOut: number[] = [];
  const asker = new PeerForwarder(one, echo, (peer) => timedOut.push(peer));
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
  assert.deepEqual(timedOut, [2, 2]);
  assert.equal(asker.counters.timedOut, 2);
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
