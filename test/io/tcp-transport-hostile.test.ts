// TcpTransport against a raw socket that sends what no honest peer would: every bad frame and bad
// handshake closes the connection or drops the frame, bumps the right counter, keeps memory bounded,
// and leaves the transport working for its legitimate peers.
import { FRAME_KIND_GROUP_IDENTITY } from '../../src/io/group-identity.js';
import { FRAME_KIND_APPLICATION } from '../../src/io/application-frame.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PaxosMessage } from '../../src/core/messages.js';
import type { TransportCounterName } from '../../src/io/transport-stats.js';
import { MAX_PENDING_HANDSHAKES, MAX_PENDING_PER_ADDRESS } from '../../src/io/tcp-transport.js';
import { encodeFrame, encodeMessageFrame } from '../../src/io/wire-frame.js';
import {
  CLUSTER, RawPeer, UNUSED_ADDRESS, ask, closeAll, handshakeFrame, sleep, startNode, waitFor,
  type TestNode,
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

test('a Paxos frame before the handshake closes the connection and is not delivered', async () => {
  const delivered = two.received.length;
  await expectCounted('handshakesFailed', true, (peer) => peer.write(sent(ask(1, 4242))));
  assert.ok(two.received.every((entry) => entry.message.instanceId !== 4242), 'the frame was not delivered');
  assert.equal(two.from(1).length, 0);
  assert.equal(two.received.length, delivered + 1, 'only the honest round trip');
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
    // The first two bytes of the length are held (nothing is allocated for a frame yet)...
    peer.write(header.subarray(0, 2));
    await waitFor(() => two.stats().receiveBufferBytes > 0, 'the start of the length is held');
    assert.equal(two.stats().receiveBufferBytes, 2, 'only the bytes received, no frame buffer');
    assert.ok(!peer.closed);
    // ...and the rest of it closes the connection: the length is refused before any body arrives.
    peer.write(header.subarray(2));
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

test('an application frame whose group field is not 0 is dropped and counted; the connection stays', async () => {
  const handed = two.stats().applicationFramesReceived + two.stats().applicationFramesUnhandled;
  const peer = await expectCounted('malformedFrames', false, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(encodeFrame(FRAME_KIND_APPLICATION, 1, Buffer.from([1, 2, 3])));
  });
  peer.destroy();
  assert.equal(two.stats().applicationFramesReceived + two.stats().applicationFramesUnhandled, handed,
    'never handed to the application');
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
    const held = two.stats().receiveBufferBytes;
    assert.ok(held > 0 && held <= MAX_FRAME + 4, `${held} bytes: at most one frame of memory`);
  });
  assert.ok(Date.now() - began >= STALL_MS - 20, 'not closed before the stall timeout');
  assert.equal(two.stats().receiveBufferBytes, 0);
});

test('a frame trickled a byte at a time is closed stallTimeoutMs after its first byte', async () => {
  let began = 0;
  let closedAfter = 0;
  await expectCounted('stalledConnections', true, async (peer) => {
    await peer.handshake(1, 2);
    const frame = encodeFrame(16, 0, Buffer.alloc(MAX_FRAME - 10));
    // One byte every STALL_MS / 4: never silent for STALL_MS, but far too slow to finish the frame.
    began = Date.now();
    for (let i = 0; i < 40 && !peer.closed; i++) {
      peer.write(frame.subarray(i, i + 1));
      await sleep(STALL_MS / 4);
      if (i === 6) {
        const held = two.stats().receiveBufferBytes;
        assert.ok(held > 0 && held <= MAX_FRAME + 4, `${held} bytes held while the frame trickles in`);
      }
    }
    closedAfter = Date.now() - began;
    assert.ok(peer.closed, `still open ${closedAfter} ms after the frame began`);
  });
  assert.ok(closedAfter >= STALL_MS - 20, `closed after ${closedAfter} ms, not before the stall timeout`);
  assert.ok(closedAfter < STALL_MS * 4, `closed after ${closedAfter} ms, soon after the stall timeout`);
  assert.equal(two.stats().receiveBufferBytes, 0);
});

test('messages sent in the turn a connection is dropped for a bad frame wait for the next one', async () => {
  const first = await raw();
  let second: RawPeer | undefined;
  const count = 100;
  try {
    await first.handshake(1, 2);
    // Sent from inside the delivery of a message whose connection is about to be closed: the bad frame
    // right behind it arrives in the same chunk.
    two.onReceive = (_group, message) => {
      if (message.from !== 1 || message.instanceId !== 700) return;
      for (let i = 0; i < count; i++) two.transport.send(i % 4, 1, ask(2, 800 + i));
    };
    const crcErrors = two.stats().crcErrors;
    const bad = sent(ask(1, 701));
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    first.write(Buffer.concat([sent(ask(1, 700)), bad]));
    await first.waitClosed();
    assert.equal(two.stats().crcErrors, crcErrors + 1);
    const queued = two.stats().peers.find((peer) => peer.nodeId === 1);
    assert.deepEqual(queued, { nodeId: 1, connected: false, queuedMessages: count, queuedBytes: count * 26 },
      'the messages wait in the queue');
    assert.equal(first.frames.filter((frame) => frame.kind === 21).length, 0);
    second = await raw();
    await second.handshake(1, 2);
    const next = second;
    const received = (): number[] => next.frames.filter((frame) => frame.kind === 21)
      .map((frame) => frame.body.readUInt32LE(4));
    await waitFor(() => received().length === count, 'every message arrives on the next connection');
    assert.deepEqual(received(), Array.from({ length: count }, (_, i) => 800 + i));
  } finally {
    two.onReceive = null;
    first.destroy();
    second?.destroy();
  }
  await honestPeersStillTalk();
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

test('idle connections from one address hold at most MAX_PENDING_PER_ADDRESS slots', async () => {
  const evicted = two.stats().handshakesEvicted;
  const accepted = two.stats().connectionsAccepted;
  const idle = await Promise.all(Array.from({ length: 20 }, () => raw()));
  const peer = await raw();
  try {
    await waitFor(() => two.stats().connectionsAccepted === accepted + 21, 'every connection accepted');
    assert.equal(two.stats().pendingHandshakes, MAX_PENDING_PER_ADDRESS);
    assert.equal(two.stats().handshakesEvicted, evicted + 21 - MAX_PENDING_PER_ADDRESS);
    // The newest connection, from the same address as the flood, is not one of those evicted.
    await peer.handshake(1, 2);
    const count = two.from(1).length;
    peer.write(sent(ask(1, 31)));
    await waitFor(() => two.from(1).length === count + 1, 'the real peer is heard');
    await waitFor(() => idle.filter((socket) => socket.closed).length === 21 - MAX_PENDING_PER_ADDRESS,
      'the oldest idle connections are closed');
  } finally {
    for (const socket of idle) socket.destroy();
    peer.destroy();
  }
  await honestPeersStillTalk();
});

test('a flood of idle connections reaches the pending cap, evicts the oldest, and never locks out a peer',
  async (t) => {
    // A node of its own, whose handshake deadline outlasts the test: the idle sockets stay until evicted.
    const target = await startNode(2, { 1: UNUSED_ADDRESS }, { handshakeTimeoutMs: 30_000 });
    const flood = MAX_PENDING_HANDSHAKES + 44;
    const idle: RawPeer[] = [];
    const later: TestNode[] = [];
    t.after(async () => {
      for (const socket of idle) socket.destroy();
      await closeAll([...later, target]);
    });
    // From 127.0.0.2, 127.0.1.2, ...: no address reaches its own bound, so the total does.
    idle.push(...await Promise.all(Array.from({ length: flood },
      (_, i) => RawPeer.connect(target.address.port, `127.0.${Math.floor(i / MAX_PENDING_PER_ADDRESS)}.2`))));
    await waitFor(() => target.stats().connectionsAccepted === flood, 'every idle connection accepted');
    assert.equal(target.stats().pendingHandshakes, MAX_PENDING_HANDSHAKES, 'the cap is reached');
    assert.equal(target.stats().handshakesEvicted, flood - MAX_PENDING_HANDSHAKES);
    await waitFor(() => idle.filter((socket) => socket.closed).length === flood - MAX_PENDING_HANDSHAKES,
      'the oldest are closed');
    // A real peer connects at once and talks both ways.
    const began = Date.now();
    const one = await startNode(1, { 2: target.address });
    later.push(one);
    await waitFor(() => one.connectedTo(2) && target.connectedTo(1), 'the real peer connects', 3_000);
    one.transport.send(0, 2, ask(1, 1));
    target.transport.send(1, 1, ask(2, 2));
    await waitFor(() => target.from(1).length === 1 && one.from(2).length === 1, 'a round trip', 3_000);
    assert.ok(Date.now() - began < 3_000);
    assert.equal(one.stats().connectFailures + one.stats().reconnects, 0, 'connected on the first dial');
    assert.equal(target.stats().pendingHandshakes, MAX_PENDING_HANDSHAKES - 1, 'its slot was freed by its handshake');
    // The flood is logged in a bounded number of lines, and so is its garbage.
    for (const socket of idle) if (!socket.closed) socket.write(Buffer.from('garbage garbage garbage'));
    await Promise.all(idle.map((socket) => socket.waitClosed()));
    const warnings = target.logger.lines.filter((line) => line.level === 'warn');
    assert.ok(warnings.length <= 2, `${warnings.length} warn lines for ${flood} bad connections`);
    assert.equal(target.stats().pendingHandshakes, 0);
    assert.ok(one.connectedTo(2));
  });

test('a malformed group identity closes the connection', async () => {
  await expectCounted('malformedFrames', true, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(encodeFrame(FRAME_KIND_GROUP_IDENTITY, 0, Buffer.from('not a gid')));
  });
  await expectCounted('malformedFrames', true, async (attacker) => {
    await attacker.handshake(1, 2);
    attacker.write(encodeFrame(FRAME_KIND_GROUP_IDENTITY, 0, Buffer.alloc(8)));
  });
});
