// Mutual TLS between TcpTransports over real loopback sockets: honest nodes with certificates of the
// cluster CA talk; a client of another CA, an expired certificate, plain TCP, and a valid
// certificate claiming another node id are refused at the handshake, counted, and deliver nothing;
// a dialer refuses a listener whose certificate names another node; and rotated files take effect
// for new connections, a rotated CA closing connections it no longer trusts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as connectTls, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { TransportCounterName } from '../../src/io/transport-stats.js';
import { issueNodeCert } from '../../src/security/cert-tool.js';
import type { TlsFileOptions } from '../../src/security/tls-files.js';
import {
  LOCALHOST, RawPeer, UNUSED_ADDRESS, ask, closeAll, handshakeFrame, sleep, startNode, waitFor, type TestNode,
} from '../io/transport-fixtures.js';
import { makeTestPki, type TestPki } from '../support/certs.js';

let pki: TestPki;
// Node 2 is attacked; node 1 is its honest peer (1 dials 2).
let one: TestNode;
let two: TestNode;
let twoFiles: TlsFileOptions;

before(async () => {
  pki = await makeTestPki('transport-tls');
  // Node 2 has its own copy of the CA file, which the rotation test replaces.
  twoFiles = { ...await pki.node(2), ca: join(pki.dir, 'node-2-ca.crt') };
  await copyFile(pki.ca.cert, twoFiles.ca);
  two = await startNode(2, { 1: UNUSED_ADDRESS }, { tls: twoFiles, handshakeTimeoutMs: 1_000 });
  one = await startNode(1, { 2: two.address }, { tls: await pki.node(1) });
  await waitFor(() => one.connectedTo(2) && two.connectedTo(1), 'the honest pair connects over TLS');
});

after(() => closeAll([one, two]));

async function honestPairTalks(): Promise<void> {
  const id = Math.floor(Math.random() * 1e6);
  one.transport.send(0, 2, ask(1, id));
  two.transport.send(0, 1, ask(2, id));
  await waitFor(() => two.from(1).some((entry) => entry.message.instanceId === id) &&
    one.from(2).some((entry) => entry.message.instanceId === id), 'an honest round trip over TLS');
}

/** A raw TLS client to node 2 with the given files; resolves once TLS is up, or with the error. */
async function tlsClient(files: TlsFileOptions | undefined): Promise<RawPeer | Error> {
  const socket = connectTls({
    host: LOCALHOST, port: two.address.port, checkServerIdentity: () => undefined,
    ca: readFileSync(pki.ca.cert),
    ...(files === undefined ? {} : { cert: readFileSync(files.cert), key: readFileSync(files.key) }),
  });
  const peer = new RawPeer(socket);
  return await new Promise((resolve) => {
    // TLS 1.3: the server checks the client certificate after the client's handshake is done, so a
    // refusal shows as the connection closing (with an alert) right after 'secureConnect'.
    socket.once('secureConnect', () => resolve(peer));
    socket.once('error', (error) => resolve(error));
  });
}

async function expectRefused(counter: TransportCounterName, files: TlsFileOptions | undefined,
  claim: number | undefined): Promise<void> {
  const before = two.stats()[counter];
  const delivered = two.received.length;
  const peer = await tlsClient(files);
  if (peer instanceof RawPeer) {
    if (claim !== undefined) peer.write(handshakeOf(claim));
    peer.write(Buffer.from(Array(64).fill(1)));
    await peer.waitClosed();
    assert.ok(!peer.frames.some((frame) => frame.kind === 1), 'no handshake acknowledgement');
  }
  await waitFor(() => two.stats()[counter] === before + 1, `${counter} counted`);
  assert.equal(two.received.length, delivered, 'nothing delivered');
  assert.ok(two.connectedTo(1), 'the honest connection stays');
  await honestPairTalks();
}

function handshakeOf(claim: number): Buffer {
  return handshakeFrame(claim, 2);
}

test('honest nodes with certificates of the cluster CA exchange messages over TLS', async () => {
  await honestPairTalks();
  assert.equal(two.stats().tlsHandshakesFailed, 0);
  assert.equal(two.stats().certificateMismatches, 0);
});

test('a certificate of another CA is refused by the TLS handshake', async () => {
  await expectRefused('tlsHandshakesFailed', await pki.foreign(1), 1);
});

test('an expired certificate of the cluster CA is refused by the TLS handshake', async () => {
  await expectRefused('tlsHandshakesFailed', await pki.expired(1), 1);
});

test('a connection with no certificate, and a plain TCP connection, are refused', async () => {
  await expectRefused('tlsHandshakesFailed', undefined, 1);
  const before = two.stats().tlsHandshakesFailed;
  const plain = await RawPeer.connect(two.address.port);
  plain.write(handshakeOf(1));
  await plain.waitClosed();
  await waitFor(() => two.stats().tlsHandshakesFailed === before + 1, 'the plain connection counted');
  assert.equal(plain.frames.length, 0);
});

test('a valid certificate naming node 3 that claims to be node 1 is refused after TLS, before any message', async () => {
  const replaced = two.stats().connectionsReplaced;
  await expectRefused('certificateMismatches', await pki.node(3), 1);
  assert.equal(two.stats().connectionsReplaced, replaced, 'the impostor never replaced the honest connection');
  const line = two.logger.lines.find((entry) => String(entry.fields?.reason ?? '').includes('does not name node 1'));
  assert.ok(line !== undefined, 'the refusal is logged with its reason');
});

test('a dialer refuses a listener whose certificate names another node than the one it dials', async () => {
  // A TLS server of the cluster CA holding node 3's certificate, at the address node 1 has for node 4.
  const three = await pki.node(3);
  const received: Buffer[] = [];
  const server = createTlsServer({
    ca: readFileSync(pki.ca.cert), cert: readFileSync(three.cert), key: readFileSync(three.key), requestCert: true,
  }, (socket: TLSSocket) => socket.on('data', (chunk: Buffer) => received.push(chunk)));
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const before = one.stats().certificateMismatches;
    one.transport.setPeerAddress(4, { host: LOCALHOST, port });
    await waitFor(() => one.stats().certificateMismatches >= before + 1, 'the mismatch is counted by the dialer');
    await sleep(50);
    assert.equal(received.length, 0, 'not even the handshake was sent');
    assert.equal(one.connectedTo(4), false);
  } finally {
    one.transport.setPeerAddress(4, undefined);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('rotation: new certificate files serve new connections; a new CA closes connections it does not trust', async () => {
  const files = twoFiles;
  const serialOf = async (): Promise<string> => {
    const peer = await tlsClient(await pki.node(1));
    assert.ok(peer instanceof RawPeer);
    const serial = (peer.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? '';
    peer.destroy();
    return serial;
  };
  const oldSerial = await serialOf();
  // Issue node 2 a new certificate elsewhere, then move it over the old files (as an operator would).
  const fresh = await issueNodeCert(pki.ca, join(pki.dir, 'rotated'), 2);
  await rename(fresh.key, files.key);
  await rename(fresh.cert, files.cert);
  await waitFor(() => two.stats().tlsReloads >= 1, 'node 2 reloads its files', 3_000);
  const newSerial = await serialOf();
  assert.notEqual(newSerial, oldSerial, 'new connections get the new certificate');
  assert.ok(two.connectedTo(1), 'the existing connection (same CA) stays');
  await honestPairTalks();

  // Node 2 now trusts only the other CA: node 1's connection (cluster CA) is closed and not re-admitted.
  const revoked = two.stats().certificatesRevoked;
  const caCopy = join(pki.dir, 'ca-copy.crt');
  await copyFile(pki.otherCa.cert, caCopy);
  await rename(caCopy, files.ca);
  await waitFor(() => two.stats().certificatesRevoked === revoked + 1, 'the untrusted connection is closed', 3_000);
  await waitFor(() => !two.connectedTo(1), 'node 1 is disconnected');
  const failed = two.stats().tlsHandshakesFailed;
  await waitFor(() => two.stats().tlsHandshakesFailed > failed, 'node 1\'s reconnections are refused by TLS', 3_000);
  assert.equal(two.connectedTo(1), false);
});

test('a peer whose certificate expires while connected is disconnected and refused from then on', async () => {
  const soon = await issueNodeCert(pki.ca, join(pki.dir, 'short-lived'), 5,
    { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_000) });
  const six = await startNode(6, { 5: UNUSED_ADDRESS }, { tls: await pki.node(6) });
  const five = await startNode(5, { 6: six.address }, { tls: { ca: pki.ca.cert, cert: soon.cert, key: soon.key } });
  try {
    await waitFor(() => six.connectedTo(5), 'node 5 connects while its certificate is valid');
    await waitFor(() => six.stats().certificatesRevoked === 1, 'the connection is closed when it expires', 8_000);
    await waitFor(() => !six.connectedTo(5), 'node 5 is disconnected');
    const failed = six.stats().tlsHandshakesFailed;
    await waitFor(() => six.stats().tlsHandshakesFailed > failed, 'its reconnections are refused by TLS', 5_000);
    assert.equal(six.connectedTo(5), false);
  } finally {
    await closeAll([five, six]);
  }
});
