// A TLS handshake under way when the CA changes completes under the old CA (the listener picked its
// context when the connection arrived), after the node has checked its open connections against
// the new one. The node checks the certificate against the CA it holds now before accepting the
// protocol handshake: such a peer is refused. Real loopback sockets and files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, rename } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import {
  LOCALHOST, RawPeer, UNUSED_ADDRESS, closeAll, handshakeFrame, sleep, startNode, waitFor,
} from '../io/transport-fixtures.js';
import { makeTestPki } from '../support/certs.js';

test('a peer whose TLS handshake began before a CA change is refused once the new CA does not trust it', async () => {
  const pki = await makeTestPki('ca-change-race');
  const files = { ...await pki.node(7), ca: join(pki.dir, 'node-7-ca.crt') };
  await copyFile(pki.ca.cert, files.ca);
  const seven = await startNode(7, { 6: UNUSED_ADDRESS }, { tls: files, handshakeTimeoutMs: 30_000 });
  try {
    // The TCP connection arrives under the old CA...
    const raw = connectTcp({ host: LOCALHOST, port: seven.address.port });
    raw.on('error', () => {});
    await new Promise((resolve) => raw.once('connect', resolve));
    await sleep(50);
    // ...the CA changes (to one that did not sign node 6's certificate) and the node reloads it...
    const reloads = seven.stats().tlsReloads;
    const staged = join(pki.dir, 'node-7-ca.next');
    await copyFile(pki.otherCa.cert, staged);
    await rename(staged, files.ca);
    await waitFor(() => seven.stats().tlsReloads > reloads, 'the node reloads its CA', 5_000);
    // ...and only then does the TLS handshake run, under the context the connection started with.
    const six = await pki.node(6);
    const socket = connectTls({
      socket: raw, ca: readFileSync(pki.ca.cert), checkServerIdentity: () => undefined,
      cert: readFileSync(six.cert), key: readFileSync(six.key),
    });
    const peer = new RawPeer(socket);
    const secured = await new Promise<boolean>((resolve) => {
      socket.once('secureConnect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (secured) {
      const revoked = seven.stats().certificatesRevoked;
      peer.write(handshakeFrame(6, 7));
      await peer.waitClosed();
      assert.ok(!peer.frames.some((frame) => frame.kind === 1), 'no handshake acknowledgement');
      assert.equal(seven.stats().certificatesRevoked, revoked + 1);
    }
    assert.equal(seven.connectedTo(6), false);
  } finally {
    await closeAll([seven]);
  }
});
