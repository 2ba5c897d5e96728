// Writing a reply cannot throw: a header Node refuses (CR LF in a value) destroys the connection
// and is reported, instead of throwing out of a promise's callback, which would end the process.
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendReply } from '../../src/kv/http-reply.js';

test('a reply whose header Node refuses: the connection is destroyed and the error reported, nothing thrown', async () => {
  const reported: unknown[] = [];
  const thrown: unknown[] = [];
  const server = createServer((_request, response) => {
    try {
      sendReply(response, { status: 200, body: { ok: true }, headers: { 'x-multipaxos-node': '1\r\nset-cookie: x=1' } },
        (error) => reported.push(error));
    } catch (error) {
      thrown.push(error);
      response.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const outcome = await new Promise<string>((resolve) => {
      const asked = httpRequest({ host: '127.0.0.1', port, path: '/' }, (response) => resolve(`status ${response.statusCode}`));
      asked.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
      asked.end();
    });
    assert.equal(outcome, 'error ECONNRESET', 'no reply with the injected header');
    assert.deepEqual(thrown, []);
    assert.equal(reported.length, 1);
    assert.equal((reported[0] as NodeJS.ErrnoException).code, 'ERR_INVALID_CHAR');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a valid reply is written with its length and type', async () => {
  const server = createServer((_request, response) => {
    sendReply(response, { status: 201, body: { ok: true }, headers: { 'x-a': 'b' } }, () => assert.fail('sendable'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-a'), 'b');
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(await response.text(), '{"ok":true}\n');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
