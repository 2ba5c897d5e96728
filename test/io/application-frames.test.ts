// Application frames over the TCP transport: an embedding application's opaque bytes reach the
// peer with the authenticated sender's id, in order and batched with Paxos messages in one write;
// nothing is queued for a peer without an open connection (the application takes another way);
// frames without a handler are counted; a handler that throws is counted and the connection stays;
// application frames never push a Paxos message out of a peer's queue and take at most a quarter of it.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationPayload, FRAME_KIND_APPLICATION } from '../../src/io/application-frame.js';
import { OutboundQueue } from '../../src/io/outbound-queue.js';
import { FIRST_MESSAGE_KIND_CODE, decodeMessage } from '../../src/io/message-codec.js';
import { WireError } from '../../src/io/wire-error.js';
import { ask, closeAll, startCluster, startNode, waitFor, UNUSED_ADDRESS, type TestNode } from './transport-fixtures.js';

const running: TestNode[] = [];

afterEach(async () => {
  await closeAll(running.splice(0));
});

test('bytes reach the peer with its id, in order, sharing one socket write with the Paxos messages', async () => {
  const [one, two] = await startCluster([1, 2]);
  running.push(one as TestNode, two as TestNode);
  const got: [number, string][] = [];
  two?.transport.onApplication((from, body) => got.push([from, Buffer.from(body).toString()]));
  const writesBefore = one?.stats().writes ?? 0;
  one?.transport.send(0, 2, ask(1, 7));
  assert.equal(one?.transport.sendApplication(2, Buffer.from('first')), true);
  one?.transport.send(1, 2, ask(1, 8));
  assert.equal(one?.transport.sendApplication(2, Buffer.from('second')), true);
  await waitFor(() => got.length === 2 && (two?.received.length ?? 0) === 2, 'both frames and both messages');
  assert.deepEqual(got, [[1, 'first'], [1, 'second']]);
  assert.equal((one?.stats().writes ?? 0) - writesBefore, 1, 'one socket write for the turn');
  assert.equal(one?.stats().applicationFramesSent, 2);
  assert.equal(two?.stats().applicationFramesReceived, 2);
  // And back the other way, over the same connection.
  const back: string[] = [];
  one?.transport.onApplication((from, body) => back.push(`${from}:${Buffer.from(body).toString()}`));
  assert.equal(two?.transport.sendApplication(1, new Uint8Array([104, 105])), true);
  await waitFor(() => back.length === 1, 'the answer');
  assert.deepEqual(back, ['2:hi']);
});

test('no open connection, an unknown peer or this node itself: false, nothing queued', async () => {
  const lonely = await startNode(1, { 2: UNUSED_ADDRESS });
  running.push(lonely);
  assert.equal(lonely.transport.sendApplication(2, Buffer.from('x')), false);
  assert.equal(lonely.transport.sendApplication(3, Buffer.from('x')), false);
  assert.equal(lonely.transport.sendApplication(1, Buffer.from('x')), false);
  assert.equal(lonely.stats().peers[0]?.queuedMessages, 0);
  assert.equal(lonely.stats().applicationFramesSent, 0);
});

test('a frame above maxFrameBytes is refused at once', async () => {
  const [one, two] = await startCluster([1, 2], { maxFrameBytes: 4096 });
  running.push(one as TestNode, two as TestNode);
  assert.equal(one?.transport.sendApplication(2, Buffer.alloc(5000)), false);
  assert.equal(one?.transport.sendApplication(2, Buffer.alloc(100)), true);
});

test('no handler: counted and dropped; a handler that throws: counted, and the connection carries on', async () => {
  const [one, two] = await startCluster([1, 2]);
  running.push(one as TestNode, two as TestNode);
  one?.transport.sendApplication(2, Buffer.from('nobody listens'));
  await waitFor(() => two?.stats().applicationFramesUnhandled === 1, 'the unhandled frame counted');
  let calls = 0;
  two?.transport.onApplication(() => {
    calls++;
    throw new Error('application bug');
  });
  one?.transport.sendApplication(2, Buffer.from('boom'));
  await waitFor(() => calls === 1, 'the handler ran');
  assert.equal(two?.stats().handlerErrors, 1);
  one?.transport.send(0, 2, ask(1, 1));
  await waitFor(() => two?.received.length === 1, 'a Paxos message still gets through');
  assert.ok(one?.connectedTo(2));
});

test('the kind is one an older node drops as unknown (a Paxos kind it does not decode), not one that closes', () => {
  assert.ok(FRAME_KIND_APPLICATION >= FIRST_MESSAGE_KIND_CODE);
  assert.throws(() => decodeMessage(FRAME_KIND_APPLICATION, new Uint8Array(4)),
    (error: unknown) => error instanceof WireError && error.reason === 'unknown-kind');
});

test('the queue: an application frame is refused rather than evict anything, and keeps to its quarter', () => {
  const queue = new OutboundQueue(8, 1_000);
  const frame = (): ApplicationPayload => new ApplicationPayload(new Uint8Array(1));
  assert.equal(queue.pushApplication(frame(), 200, 0), true);
  assert.equal(queue.pushApplication(frame(), 100, 0), false, 'a quarter of the bytes (250) at most');
  assert.equal(queue.pushApplication(frame(), 50, 0), true);
  assert.equal(queue.pushApplication(frame(), 1, 0), false, 'a quarter of the messages (2) at most');
  assert.equal(queue.applicationLength, 2);
  assert.equal(queue.applicationByteLength, 250);
  // Paxos messages fill the rest; then an application frame that would evict one is refused...
  for (let i = 0; i < 6; i++) assert.equal(queue.push(0, ask(1, i), 100, 0), 0);
  queue.shift();
  queue.shift();
  assert.equal(queue.applicationLength, 0, 'both application frames left first (they were oldest)');
  assert.equal(queue.pushApplication(frame(), 200, 0), true);
  assert.equal(queue.pushApplication(frame(), 49, 0), true);
  assert.equal(queue.length, 8);
  assert.equal(queue.pushApplication(frame(), 1, 0), false, 'the queue is full: refused, nothing evicted');
  assert.equal(queue.length, 8);
  // ...while a Paxos message still pushes out the oldest entry, as before.
  assert.equal(queue.push(0, ask(1, 9), 100, 0), 1);
  assert.equal(queue.byteLength, 6 * 100 + 200 + 49);
  assert.equal(queue.applicationByteLength, 249);
});

test('many application frames at once: the ones beyond their share are refused, no Paxos message dropped', async () => {
  const [one, two] = await startCluster([1, 2], { maxQueueBytes: 16 * 1024 });
  running.push(one as TestNode, two as TestNode);
  const got: number[] = [];
  two?.transport.onApplication((_from, body) => got.push(body.length));
  // All in one turn, before the queue is flushed: 4 frames of 1,000 bytes fit in a quarter of 16 KiB, a 5th does not.
  const accepted = [1, 2, 3, 4, 5].map(() => one?.transport.sendApplication(2, Buffer.alloc(1_000)));
  assert.deepEqual(accepted, [true, true, true, true, false]);
  one?.transport.send(0, 2, ask(1, 1));
  await waitFor(() => got.length === 4 && two?.received.length === 1, 'the frames and the Paxos message');
  assert.equal(one?.stats().droppedQueueFull, 0);
});

test('dropping the application frames keeps every other entry, in order, and the counts right', () => {
  const queue = new OutboundQueue(16, 1_000_000);
  queue.push(0, ask(1, 1), 10, 0);
  assert.equal(queue.pushApplication(new ApplicationPayload(Buffer.from('a')), 7, 0), true);
  queue.push(1, ask(1, 2), 10, 0);
  assert.equal(queue.pushApplication(new ApplicationPayload(Buffer.from('b')), 7, 0), true);
  queue.push(0, ask(1, 3), 10, 0);
  assert.equal(queue.dropApplication(), 2);
  const left = Array.from({ length: queue.length },
    (_, i) => `${queue.groupAt(i)}:${(queue.messageAt(i) as { instanceId: number }).instanceId}`);
  assert.deepEqual(left, ['0:1', '1:2', '0:3']);
  assert.deepEqual([queue.byteLength, queue.applicationLength, queue.applicationByteLength], [30, 0, 0]);
  assert.equal(queue.dropApplication(), 0);
});

test('connectionOf: one token while a connection lasts, another after a reconnect, none while down', async () => {
  const [one, two] = await startCluster([1, 2]);
  running.push(one as TestNode, two as TestNode);
  const first = one?.transport.connectionOf(2);
  assert.notEqual(first, undefined);
  one?.transport.send(0, 2, ask(1, 1));
  await waitFor(() => (two?.received.length ?? 0) === 1, 'a message delivered');
  assert.equal(one?.transport.connectionOf(2), first, 'the same connection, the same token');
  assert.equal(one?.transport.connectionOf(9), undefined, 'no such peer');
  // Cut it from node 2's side: node 1 sees it go, then the pair connects again.
  type Peers = Map<number, { connection: { socket: { destroy(): void } } | null }>;
  const peers = (two?.transport as unknown as { peers: Peers }).peers;
  peers.get(1)?.connection?.socket.destroy();
  await waitFor(() => one?.transport.connectionOf(2) !== first, 'the old connection gone');
  await waitFor(() => one?.transport.connectionOf(2) !== undefined, 'connected again', 10_000);
  assert.notEqual(one?.transport.connectionOf(2), first);
  assert.ok(Object.isFrozen(one?.transport.connectionOf(2)), 'a token, not the connection');
});
