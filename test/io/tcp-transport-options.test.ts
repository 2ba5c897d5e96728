// TcpTransport option validation: every mistake is a BAD_OPTIONS error naming the field; a port
// already in use is STARTUP_FAILED.
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PaxosError } from '../../src/errors.js';
import { TcpTransport } from '../../src/io/tcp-transport.js';
import { resolveTransportOptions, TRANSPORT_DEFAULTS, type TcpTransportOptions } from '../../src/io/tcp-transport-options.js';
import { CLUSTER, LOCALHOST, UNUSED_ADDRESS, startNode } from './transport-fixtures.js';

const valid: TcpTransportOptions = {
  nodeId: 1, clusterId: CLUSTER, listen: { host: LOCALHOST, port: 0 }, peers: { 1: UNUSED_ADDRESS, 2: UNUSED_ADDRESS },
  groupCount: 1,
};

function rejects(overrides: Record<string, unknown>, field: string): void {
  assert.throws(() => resolveTransportOptions({ ...valid, ...overrides } as TcpTransportOptions),
    (error: unknown) => error instanceof PaxosError && error.code === 'BAD_OPTIONS' && error.message.includes(field),
    `${JSON.stringify(overrides)} names ${field}`);
}

test('defaults, and the node itself is left out of the peers', () => {
  const resolved = resolveTransportOptions(valid);
  assert.equal(resolved.maxFrameBytes, 16 * 1024 * 1024);
  assert.equal(resolved.maxQueueMessages, TRANSPORT_DEFAULTS.maxQueueMessages);
  assert.equal(resolved.maxQueueBytes, 64 * 1024 * 1024);
  assert.equal(resolved.reconnectMinMs, 50);
  assert.equal(resolved.reconnectMaxMs, 2000);
  assert.equal(resolved.handshakeTimeoutMs, 5000);
  assert.equal(resolved.stallTimeoutMs, 30_000);
  assert.deepEqual([...resolved.peers.keys()], [2]);
  const fromMap = resolveTransportOptions({ ...valid, peers: new Map([[1, UNUSED_ADDRESS], [3, UNUSED_ADDRESS]]) });
  assert.deepEqual([...fromMap.peers.keys()], [3]);
});

test('every bad option is refused, naming its field', () => {
  rejects({ nodeId: 0 }, 'nodeId');
  rejects({ nodeId: 1.5 }, 'nodeId');
  rejects({ nodeId: 2 ** 32 }, 'nodeId');
  rejects({ nodeId: '1' }, 'nodeId');
  rejects({ clusterId: '' }, 'clusterId');
  rejects({ clusterId: 'é'.repeat(65) }, 'clusterId');
  rejects({ clusterId: 7 }, 'clusterId');
  rejects({ listen: undefined }, 'listen');
  rejects({ listen: { host: '', port: 0 } }, 'listen.host');
  rejects({ listen: { host: LOCALHOST, port: 65_536 } }, 'listen.port');
  rejects({ peers: null }, 'peers');
  rejects({ peers: { 0: UNUSED_ADDRESS } }, 'peers key 0');
  rejects({ peers: { abc: UNUSED_ADDRESS } }, 'peers key abc');
  rejects({ peers: { 2: { host: LOCALHOST, port: 0 } } }, 'peers[2].port');
  rejects({ peers: { 2: 'localhost:1' } }, 'peers[2]');
  rejects({ groupCount: 0 }, 'groupCount');
  rejects({ maxFrameBytes: 100 }, 'maxFrameBytes');
  rejects({ maxQueueMessages: 0 }, 'maxQueueMessages');
  rejects({ maxQueueBytes: -1 }, 'maxQueueBytes');
  rejects({ maxQueueAgeMs: 0 }, 'maxQueueAgeMs');
  rejects({ reconnectMinMs: 0 }, 'reconnectMinMs');
  rejects({ reconnectMinMs: 100, reconnectMaxMs: 50 }, 'reconnectMaxMs');
  rejects({ handshakeTimeoutMs: Number.NaN }, 'handshakeTimeoutMs');
  rejects({ stallTimeoutMs: Infinity }, 'stallTimeoutMs');
  rejects({ logger: { info: () => {} } }, 'logger');
  rejects({ random: {} }, 'random');
  assert.equal(resolveTransportOptions({ ...valid, clusterId: 'é'.repeat(64) }).clusterIdBytes.length, 128);
});

test('start() refuses bad options, and a port in use with STARTUP_FAILED', async () => {
  await assert.rejects(TcpTransport.start({ ...valid, groupCount: -1 }), { code: 'BAD_OPTIONS' });
  const node = await startNode(1, { 2: UNUSED_ADDRESS });
  try {
    await assert.rejects(TcpTransport.start({ ...valid, listen: node.address }), { code: 'STARTUP_FAILED' });
  } finally {
    await node.transport.close();
  }
});

test('localAddress: outgoing connections leave from it; anything but an IP address is refused', async () => {
  rejects({ localAddress: 'localhost' }, 'localAddress');
  rejects({ localAddress: '' }, 'localAddress');
  rejects({ localAddress: 7 }, 'localAddress');
  assert.equal(resolveTransportOptions(valid).localAddress, undefined);
  // Node 1 (the lower id) dials node 2, a plain TCP server here that records where the dial came from.
  // 127.0.0.2 is on the loopback interface of Linux (all of 127.0.0.0/8 is).
  const sources: string[] = [];
  const server = createServer((socket) => {
    sources.push(socket.remoteAddress ?? '');
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const { port } = server.address() as AddressInfo;
  const transport = await TcpTransport.start({ ...valid, peers: { 2: { host: LOCALHOST, port } }, localAddress: '127.0.0.2' });
  try {
    const deadline = Date.now() + 5_000;
    while (sources.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(sources[0], '127.0.0.2');
  } finally {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  }
});
