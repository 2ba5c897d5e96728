// Connections that never finish their TLS handshake are bounded like protocol handshakes: from one
// address at most MAX_PENDING_PER_ADDRESS wait, the oldest being closed when another arrives, long
// before the handshake timeout; an honest peer still connects meanwhile. The HTTPS API drops a
// connection whose TLS handshake is not done within 10 s. Real loopback sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { MAX_PENDING_PER_ADDRESS } from '../../src/io/tcp-transport.js';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { LOCALHOST, UNUSED_ADDRESS, closeAll, startNode, waitFor } from '../io/transport-fixtures.js';
import { makeTestPki } from '../support/certs.js';

test('raw connections stuck before TLS are bounded per address, oldest closed first', async () => {
  const pki = await makeTestPki('tls-handshake-flood');
  // A handshake timeout far beyond the test: only the bound can close the stuck connections.
  const two = await startNode(2, { 1: UNUSED_ADDRESS }, { tls: await pki.node(2), handshakeTimeoutMs: 60_000 });
  const sockets: Socket[] = [];
  const closed = new Set<number>();
  try {
    for (let index = 0; index <= MAX_PENDING_PER_ADDRESS; index++) {
      const socket = connect({ host: LOCALHOST, port: two.address.port });
      socket.on('error', () => {});
      socket.on('close', () => closed.add(index));
      await new Promise((resolve) => socket.once('connect', resolve));
      sockets.push(socket);
      // Let the listener see it before the next one, so that "oldest" is well defined.
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await waitFor(() => closed.has(0), 'the oldest stuck connection is closed', 5_000);
    assert.deepEqual([...closed], [0], 'only the oldest');
    assert.ok(two.stats().handshakesEvicted >= 1);
    // An honest peer connects while the others are still stuck.
    const one = await startNode(1, { 2: two.address }, { tls: await pki.node(1) });
    try {
      await waitFor(() => one.connectedTo(2) && two.connectedTo(1), 'the honest peer connects');
    } finally {
      await closeAll([one]);
    }
  } finally {
    for (const socket of sockets) socket.destroy();
    await closeAll([two]);
  }
});

test('the HTTPS API drops a connection that does not finish its TLS handshake within 10 s', async () => {
  const pki = await makeTestPki('https-handshake-timeout');
  const server = await KvHttpServer.listen({ host: LOCALHOST, port: 0, tls: await pki.node(1) });
  const socket = connect({ host: LOCALHOST, port: Number(new URL(server.endpoint).port) });
  socket.on('error', () => {});
  try {
    const started = performance.now();
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const limit = setTimeout(() => reject(new Error('still open after 20 s')), 20_000);
      socket.once('close', () => {
        clearTimeout(limit);
        resolve(performance.now() - started);
      });
    });
    assert.ok(closedAfter >= 9_000, `closed after ${Math.round(closedAfter)} ms`);
  } finally {
    socket.destroy();
    await server.close();
  }
});
