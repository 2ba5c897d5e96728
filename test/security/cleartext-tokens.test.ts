// Tokens never cross the network in clear: KvClient refuses a token with a plain-HTTP endpoint off
// loopback, and never follows a master announced at an http: endpoint when it was given https ones
// (the announcing node could be misconfigured, or lying); a node serving HTTPS never forwards over
// plain HTTP. Real sockets on loopback: an HTTPS node that answers NOT_MASTER naming a plain HTTP
// listener, which must never receive a request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mayCarryCredentials } from '../../src/kv/cleartext-guard.js';
import { KvClient } from '../../src/kv/client.js';
import { Forwarder } from '../../src/kv/http-forward.js';
import { makeTestPki } from '../support/certs.js';
import { runCli } from '../support/cluster-up.js';

const TOKEN = 'write-token-0123456789abcdef';
let plain: Server;
let secure: Server;
const plainSaw: IncomingHttpHeaders[] = [];
let plainUrl = '';
let secureUrl = '';
let tls: { ca: Buffer; cert: Buffer; key: Buffer };

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve(String((server.address() as AddressInfo).port))));
}

before(async () => {
  const pki = await makeTestPki('cleartext-tokens');
  const files = await pki.node(1);
  tls = { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) };
  plain = createHttpServer((request, response) => {
    plainSaw.push(request.headers);
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"key":"k","version":1}');
  });
  plainUrl = `http://127.0.0.1:${await listen(plain)}`;
  // An HTTPS node that says the master is at the plain HTTP listener.
  secure = createHttpsServer({ cert: tls.cert, key: tls.key }, (request, response) => {
    request.resume();
    response.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({
      error: 'NOT_MASTER', message: 'not the master', mayHaveBeenApplied: false,
      master: { nodeId: 2, endpoint: plainUrl },
    }));
  }) as unknown as Server;
  secureUrl = `https://127.0.0.1:${await listen(secure)}`;
});

after(() => {
  plain.close();
  secure.close();
});

test('credentials may go over HTTPS anywhere, over plain HTTP only to loopback', () => {
  for (const url of ['https://db1.example:8081', 'http://127.0.0.1:8081', 'http://127.1.2.3:1', 'http://[::1]:8081',
    'http://localhost:8081']) {
    assert.equal(mayCarryCredentials(url), true, url);
  }
  for (const url of ['http://10.0.0.1:8081', 'http://db1.example:8081', 'http://[2001:db8::1]:1', 'http://0.0.0.0:1',
    'ftp://127.0.0.1/', 'not a url']) {
    assert.equal(mayCarryCredentials(url), false, url);
  }
  assert.throws(() => new KvClient({ endpoints: ['http://10.0.0.1:8081'], token: TOKEN }), /plain HTTP/);
  new KvClient({ endpoints: ['http://10.0.0.1:8081'] }).close();
});

test('KvClient given https endpoints never follows a master announced at an http: one', async () => {
  const client = new KvClient({ endpoints: [secureUrl], ca: tls.ca, token: TOKEN, timeoutMs: 1_500 });
  try {
    await assert.rejects(client.put('k', 'v'));
  } finally {
    client.close();
  }
  assert.deepEqual(plainSaw, [], 'nothing reached the plain HTTP endpoint');
});

test('a node serving HTTPS does not forward over plain HTTP, with or without credentials', async () => {
  const forwarder = new Forwarder({ tls: () => tls });
  try {
    for (const authorization of [`Bearer ${TOKEN}`, undefined]) {
      await assert.rejects(forwarder.forward({
        endpoint: plainUrl, method: 'PUT', path: '/v1/kv/k', body: '{"value":"v"}', fromNodeId: 1, authorization,
        timeoutMs: 1_000, isWrite: true,
      }), (error: { code?: string; mayHaveBeenApplied?: boolean }) =>
        error.code === 'UNAVAILABLE' && error.mayHaveBeenApplied === false);
    }
  } finally {
    forwarder.close();
  }
  assert.deepEqual(plainSaw, []);
});

test('members/master/snapshot refuse --token with a plain-HTTP --node off loopback, before connecting', async () => {
  // A .invalid name never resolves: the refusal must come before any lookup or connection.
  for (const args of [['members', 'list'], ['master', 'drop'], ['snapshot', 'create']]) {
    const run = await runCli([...args, '--node', 'db1.invalid:8081', '--token', TOKEN]);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /not sending the token over plain HTTP/);
  }
});
