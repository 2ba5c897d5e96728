// Application frames over the TCP transport: an embedding application's opaque bytes reach the
// peer with the authenticated sender's id, in order and batched with Paxos messages in one write;
// nothing is queued for a peer without an open connection (the application takes another way);
// frames without a handler are counted; a handler that throws is counted and the connection stays.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { FRAME_KIND_APPLICATION } from '../../src/io/application-frame.js';
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
