// TcpTransport against a raw socket that sends what no honest peer would: every bad frame and bad
// handshake closes the connection or drops the frame, bumps the right counter, keeps memory bounded,
// and leaves the transport working for its legitimate peers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PaxosMessage } from '../../src/core/messages.js';
import type { TransportCounterName } from '../../src/io/transport-stats.js';
import { encodeFrame, encodeMessageFrame } from '../../src/io/wire-frame.js';
import {
  CLUSTER, RawPeer, UNUSED_ADDRESS, ask, closeAll, handshakeFrame, sleep, startNode, waitFor, type TestNode,
} from './transport-fixtures.js';

const MAX_FRAME = 64 * 1024;
const STALL_MS = 200;
const HANDSHAKE_MS = 600;

// Node 2 is under attack; node 3 is its honest peer (2 dials 3). The raw socket claims to be node 1,
// the one peer allowed to dial node 2.
let two: TestNode;
let three: TestNode;
let roundTrips = 0;

before(async () => {
  three = await startNode(3, { 2: UNUSED_ADDRESS });
  two = await startNode(2, { 1: UNUSED_ADDRESS, 3: three.address }, {
    maxFrameBytes: MAX_FRAME, stallTimeoutMs: STALL_MS, handshakeTimeoutMs: HANDSHAKE_MS,
  });
  await waitFor(() => two.connectedTo(3), 'the honest pair connects');
});

after(() => closeAll([two, three]));

/** Node 2 and node 3 still exchange messages both ways. */
async function honestPeersStillTalk(): Promise<void> {
  const id = ++roundTrips;
  const fromThree = two.from(3).length;
  const fromTwo = three.from(2).length;
  two.transport.send(1, 3, ask(2, id));
  three.transport.send(2, 2, ask(3, id));
  await waitFor(() => two.from(3).length === fromThree + 1 && three.from(2).length === fromTwo + 1, 'honest round trip');
  assert.equal(two.from(3).at(-1)?.message.instanceId, id);
}

async function raw(): Promise<RawPeer> {
  return RawPeer.connect(two.address.port);
}

/** Run `attack`, then wait until `counter` rose by exactly one and (if `closes`) the socket closed. */
async function expectCounted(counter: TransportCounterName, closes: boolean,
  attack: (peer: RawPeer) => Promise<void> | void): Promise<RawPeer> {
  const beforeCount = two.stats()[counter];
  const peer = await raw();
  try {
    await attack(peer);
    await waitFor(() => two.stats()[counter] === beforeCount + 1, `${counter} counted`);
    if (closes) await peer.waitClosed();
    else {
      await sleep(30);
      assert.ok(!peer.closed, 'the connection stays open');
    }
    assert.equal(two.stats()[counter], beforeCount + 1);
  } finally {
    if (closes) peer.destroy();
  }
  await honestPeersStillTalk();
  return peer;
}

function sent(message: PaxosMessage): Buffer {
  return encodeMessageFrame(0, message);
}

test('a Paxos frame before the handshake closes the connection', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(sent(ask(1, 1))));
});

test('a handshake from another cluster is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(handshakeFrame(1, 2, `${CLUSTER}-other`)));
});

test('a handshake from an unknown node id is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(handshakeFrame(9, 2)));
});

test('a handshake from a node with a higher id than the acceptor is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(handshakeFrame(3, 2)));
});

test('a handshake meant for another node is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(handshakeFrame(1, 3)));
});

test('a handshake acknowledgement sent to the acceptor is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(handshakeFrame(1, 2, CLUSTER, 1)));
});

test('a malformed handshake body is refused', async () => {
  await expectCounted('handshakesFailed', true, (peer) => peer.write(encodeFrame(0, 0, Buffer.from([1, 0, 0]))));
});

test('a connection that never completes its handshake is closed after handshakeTimeoutMs', async () => {
  const began = Date.now();
  await expectCounted('handshakesFailed', true, () => undefined);
  assert.ok(Date.now() - began >= HANDSHAKE_MS - 50, 'not before the timeout');
});

test('garbage bytes close the connection (read as an absurd length)', async () => {
  await expectCounted('oversizedFrames', true, (peer) => peer.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
});

test('a frame of another protocol version closes the connection', async () => {
  await expectCounted('badVersion', true, (peer) => {
    const frame = handshakeFrame(1, 2);
    frame[4] = 9;
    peer.write(frame);
  });
});

test('a wrong CRC after the handshake closes the connection', async () => {
  await expectCounted('crcErrors', true, async (peer) => {
    await peer.handshake(1, 2);
    const frame = sent(ask(1, 2));
    frame[frame.length - 1] = (frame[frame.length - 1] as number) ^ 0x40;
    peer.write(frame);
  });
});

test('a length above maxFrameBytes closes the connection before any body arrives', async () => {
  await expectCounted('oversizedFrames', true, async (peer) => {
    await peer.handshake(1, 2);
    const header = Buffer.alloc(6);
    header.writeUInt32LE(MAX_FRAME + 1, 0);
    header[4] = 1;
    peer.write(header);
  });
  assert.equal(two.stats().receiveBufferBytes, 0);
});

test('a length below the smallest frame closes the connection', async () => {
  await expectCounted('malformedFrames', true, async (peer) => {
    await peer.handshake(1, 2);
    peer.write(Buffer.from([3, 0, 0, 0, 1]));
  });
});

test('a body that does not decode (valid CRC) closes the connection', async () => {
  await expectCounted('malformedFrames', true, async (peer) => {
    await peer.handshake(1, 2);
    peer.write(encodeFrame(21, 0, Buffer.from([1, 0, 0])));
  });
});

test('a second handshake on an authenticated connection closes it', async () => {
  await expectCounted('malformedFrames', true, async (peer) => {
    await peer.handshake(1, 2);
    peer.write(handshakeFrame(1, 2));
  });
});

test('an unknown message kind is dropped; the connection and later frames go on', async () => {
  const peer = await expectCounted('unknownKinds', false, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(encodeFrame(99, 0, Buffer.from('from the future')));
  });
  const count = two.from(1).length;
  peer.write(sent(ask(1, 77)));
  await waitFor(() => two.from(1).length === count + 1, 'a legitimate frame after the unknown one');
  peer.destroy();
});

test('a message whose sender is not the authenticated peer is dropped', async () => {
  const count = two.from(3).length;
  const peer = await expectCounted('spoofedSender', false, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(sent(ask(3, 666)));
  });
  assert.ok(two.received.every((entry) => entry.message.instanceId !== 666), 'the spoofed message never arrived');
  assert.equal(two.from(3).length, count + 1, 'only the honest round trip arrived from node 3');
  peer.destroy();
});

test('a frame for a group the node does not have is dropped', async () => {
  const peer = await expectCounted('badGroup', false, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(encodeMessageFrame(4, ask(1, 5)));
  });
  assert.ok(two.received.every((entry) => entry.group < 4));
  peer.destroy();
});

test('a peer that closes in the middle of a frame delivers nothing of it', async () => {
  const delivered = two.received.length;
  await expectCounted('truncatedFrames', true, async (peer) => {
    await peer.handshake(1, 2);
    const frame = sent(ask(1, 9));
    peer.write(frame.subarray(0, frame.length - 3));
    await sleep(20);
    peer.socket.end();
  });
  assert.equal(two.received.length, delivered + 1, 'only the honest round trip');
});

test('a partial frame that stalls is closed after stallTimeoutMs, its memory freed', async () => {
  let began = 0;
  await expectCounted('stalledConnections', true, async (peer) => {
    await peer.handshake(1, 2);
    const frame = encodeFrame(16, 0, Buffer.alloc(MAX_FRAME - 10));
    peer.write(frame.subarray(0, 1000));
    began = Date.now();
    await waitFor(() => two.stats().receiveBufferBytes > 0, 'the partial frame is held');
    assert.ok(two.stats().receiveBufferBytes <= MAX_FRAME + 4, 'at most one frame of memory');
  });
  assert.ok(Date.now() - began >= STALL_MS - 20, 'not closed before the stall timeout');
  assert.equal(two.stats().receiveBufferBytes, 0);
});

test('a new connection from a peer replaces its old one', async () => {
  const first = await raw();
  await first.handshake(1, 2);
  const replaced = two.stats().connectionsReplaced;
  const second = await raw();
  try {
    await second.handshake(1, 2);
    await first.waitClosed();
    assert.equal(two.stats().connectionsReplaced, replaced + 1);
    const count = two.from(1).length;
    second.write(sent(ask(1, 88)));
    await waitFor(() => two.from(1).length === count + 1, 'the new connection carries messages');
    two.transport.send(3, 1, ask(2, 99));
    await waitFor(() => second.frames.some((frame) => frame.group === 3), 'and node 2 answers on it');
  } finally {
    first.destroy();
    second.destroy();
  }
  await honestPeersStillTalk();
});

test('a flood of bad connections logs a bounded number of lines', async () => {
  const before = two.logger.lines.length;
  const peers = await Promise.all(Array.from({ length: 30 }, () => raw()));
  for (const peer of peers) peer.write(Buffer.from('garbage garbage garbage'));
  await Promise.all(peers.map((peer) => peer.waitClosed()));
  const lines = two.logger.lines.slice(before).filter((line) => line.level === 'warn');
  assert.ok(lines.length <= 2, `${lines.length} warn lines for 30 bad connections`);
  await honestPeersStillTalk();
});
