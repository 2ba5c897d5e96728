// The transport leaves out a chosen notification when the accept of the next instance, queued to
// the same peer behind it, tells the peer the same: the rule, the queue, and real sockets.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptMessage, ChosenMessage, PaxosMessage } from '../../src/core/messages.js';
import { chosenAnsweredByAccept } from '../../src/io/chosen-elision.js';
import { OutboundQueue } from '../../src/io/outbound-queue.js';
import { ApplicationPayload } from '../../src/io/application-frame.js';
import type { TcpTransportOptions } from '../../src/io/tcp-transport-options.js';
import { closeAll, startCluster, waitFor, ask, type TestNode } from './transport-fixtures.js';

const B = { proposalId: 5, nodeId: 1 };

function chosen(instanceId: number, ballot = B, from = 1): ChosenMessage {
  return { kind: 'chosen', from, instanceId, ballot, lastChecksum: 0 };
}

function accept(instanceId: number, previousBallot = B, from = 1): AcceptMessage {
  return {
    kind: 'accept', from, instanceId, ballot: B, value: new Uint8Array(10).fill(instanceId), lastChecksum: 0,
    previousBallot,
  };
}

test('only the previous instance\'s notification, chosen under the accept\'s previousBallot, is answered', () => {
  assert.equal(chosenAnsweredByAccept(chosen(6), accept(7)), true);
  assert.equal(chosenAnsweredByAccept(chosen(5), accept(7)), false, 'not the instance before');
  assert.equal(chosenAnsweredByAccept(chosen(7), accept(7)), false, 'the same instance');
  assert.equal(chosenAnsweredByAccept(chosen(6, { proposalId: 4, nodeId: 1 }), accept(7)), false, 'another ballot');
  assert.equal(chosenAnsweredByAccept(chosen(6, { proposalId: 0, nodeId: 0 }), accept(7, { proposalId: 0, nodeId: 0 })),
    false, 'an accept that does not know the previous ballot answers nothing');
  assert.equal(chosenAnsweredByAccept(chosen(6, B, 2), accept(7)), false, 'another sender');
  assert.equal(chosenAnsweredByAccept(ask(1, 6), accept(7)), false, 'not a notification');
});

test('the queue takes out the notification, keeps its order and its byte count right', () => {
  const queue = new OutboundQueue(100, 1_000_000);
  const entries: [number, PaxosMessage | ApplicationPayload][] = [
    [0, ask(1, 1)], [3, chosen(6)], [0, chosen(6)], [3, ask(1, 2)], [0, new ApplicationPayload(new Uint8Array(3))],
  ];
  for (const [group, message] of entries) queue.push(group, message, 10 + queue.length, 0);
  const bytesBefore = queue.byteLength;
  // Group 3's notification goes; group 0's, queued to the same peer, stays.
  assert.equal(queue.removeChosenAnsweredBy(3, accept(7)), true);
  assert.equal(queue.length, 4);
  assert.equal(queue.byteLength, bytesBefore - 11);
  assert.deepEqual([0, 1, 2, 3].map((i) => [queue.groupAt(i), queue.messageAt(i), queue.sizeAt(i)]),
    [[0, entries[0]?.[1], 10], [0, entries[2]?.[1], 12], [3, entries[3]?.[1], 13], [0, entries[4]?.[1], 14]]);
  assert.equal(queue.removeChosenAnsweredBy(3, accept(7)), false, 'nothing left to take out for group 3');
  assert.equal(queue.removeChosenAnsweredBy(0, accept(8)), false, 'the accept of a later instance answers nothing');
  // The queue still works as a ring after a removal: it drains in order and takes new entries.
  queue.shift();
  queue.push(1, ask(1, 9), 5, 0);
  assert.deepEqual(Array.from({ length: queue.length }, (_, i) => queue.groupAt(i)), [0, 3, 0, 1]);
  assert.equal(queue.byteLength, 12 + 13 + 14 + 5);
});

test('a removal across the end of the ring keeps every other entry in order', () => {
  const queue = new OutboundQueue(16, 1_000_000);
  for (let i = 0; i < 15; i++) queue.push(1, ask(1, i), 1, 0);
  for (let i = 0; i < 11; i++) queue.shift();
  // Entries 11..14 sit in slots 11..14; the notification takes the ring's last slot (15) and the
  // next entries wrap to its start (0, 1): taking it out moves them back across the end.
  queue.push(2, chosen(6), 1, 0);
  queue.push(0, ask(1, 100), 1, 0);
  queue.push(0, ask(1, 101), 1, 0);
  assert.equal(queue.removeChosenAnsweredBy(2, accept(7)), true);
  queue.push(2, accept(7), 1, 0);
  const kinds = Array.from({ length: queue.length }, (_, i) => {
    const message = queue.messageAt(i) as PaxosMessage;
    return `${queue.groupAt(i)}:${message.kind}:${message.instanceId}`;
  });
  assert.deepEqual(kinds, [11, 12, 13, 14].map((id) => `1:askForLearn:${id}`)
    .concat(['0:askForLearn:100', '0:askForLearn:101', '2:accept:7']));
  assert.equal(queue.byteLength, 7);
  // The ring keeps working past the wrap: everything leaves in order.
  const left: string[] = [];
  while (queue.length > 0) {
    left.push((queue.messageAt(0) as PaxosMessage).kind);
    queue.shift();
  }
  assert.deepEqual(left, ['askForLearn', 'askForLearn', 'askForLearn', 'askForLearn', 'askForLearn', 'askForLearn', 'accept']);
  assert.equal(queue.byteLength, 0);
});

test('a notification too far back in a long queue is left alone (the look-back is bounded)', () => {
  const queue = new OutboundQueue(1000, 1_000_000);
  queue.push(0, chosen(6), 10, 0);
  for (let i = 0; i < 64; i++) queue.push(1, ask(1, i), 10, 0);
  assert.equal(queue.removeChosenAnsweredBy(0, accept(7)), false);
  assert.equal(queue.length, 65);
});

/** Nodes 1 and 2 over real sockets, node 2 having received one message from node 1 already. */
async function connectedPair(
  t: TestContext, overrides: Partial<TcpTransportOptions> = {},
): Promise<[TestNode, TestNode]> {
  const nodes = await startCluster([1, 2], overrides);
  t.after(() => closeAll(nodes));
  const [one, two] = nodes as [TestNode, TestNode];
  one.transport.send(0, 2, ask(1, 0));
  await waitFor(() => two.received.length === 1, 'connected');
  return [one, two];
}

test('over real sockets: a notification and the next accept sent in one turn arrive as the accept alone', async (t) => {
  const [one, two] = await connectedPair(t);
  const before = one.stats();
  // One turn: group 0 and group 1 each decide instance 6 and start 7; group 1's next accept names
  // another ballot (it does not answer the notification), so that notification must still go.
  one.transport.send(0, 2, chosen(6));
  one.transport.send(1, 2, chosen(6));
  one.transport.send(0, 2, accept(7));
  one.transport.send(1, 2, accept(7, { proposalId: 4, nodeId: 3 }));
  await waitFor(() => two.received.length === 4, 'three more delivered');
  assert.deepEqual(two.received.slice(1).map(({ group, message }) => [group, message.kind, message.instanceId]),
    [[1, 'chosen', 6], [0, 'accept', 7], [1, 'accept', 7]]);
  assert.equal(one.stats().chosenElided - before.chosenElided, 1);
  assert.equal(one.stats().framesSent - before.framesSent, 3);
  // A notification already written is not taken back: the accept of a later turn goes alone.
  one.transport.send(0, 2, chosen(7));
  await waitFor(() => two.received.length === 5, 'the notification of 7 delivered');
  one.transport.send(0, 2, accept(8));
  await waitFor(() => two.received.length === 6, 'the accept of 8 delivered');
  assert.deepEqual(two.received.slice(4).map(({ message }) => message.kind), ['chosen', 'accept']);
  assert.equal(one.stats().chosenElided - before.chosenElided, 1);
});

test('an accept too large for the peer\'s queue takes nothing out: the notification still goes', async (t) => {
  const [one, two] = await connectedPair(t, { maxQueueBytes: 4_096 });
  const before = one.stats();
  one.transport.send(0, 2, chosen(6));
  // The accept's frame is above the queue's byte bound, so the transport refuses it.
  one.transport.send(0, 2, { ...accept(7), value: new Uint8Array(8_192) });
  await waitFor(() => two.received.length === 2, 'the notification delivered');
  assert.equal(two.received[1]?.message.kind, 'chosen');
  assert.equal(one.stats().chosenElided - before.chosenElided, 0);
});
