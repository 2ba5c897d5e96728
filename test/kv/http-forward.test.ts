// The forwarder of a node that is not the master, against a scripted master that goes silent: it
// answers before the caller's deadline (a write may have been applied: it was sent), then refuses
// forwards to that master at once for a while (certainly not applied: nothing was sent), and
// forwards again once the window is over and the master answers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Forwarder } from '../../src/kv/http-forward.js';
import { answer, closeFakeServers, fakeServer, kvError } from './fake-servers.js';

const forwarders: Forwarder[] = [];

afterEach(async () => {
  for (const forwarder of forwarders.splice(0)) forwarder.close();
  await closeFakeServers();
});

test('a silent master: TIMEOUT within the caller\'s time, then at once UNAVAILABLE, not sent, until the window ends',
  async () => {
    // Silent for its first request, then answering.
    const master = await fakeServer((_, response, index) => {
      if (index > 0) answer(response, 200, { key: 'k', version: 1 });
    });
    const forwarder = new Forwarder({ silentMs: 300 });
    forwarders.push(forwarder);
    const request = (isWrite: boolean): ReturnType<Forwarder['forward']> => forwarder.forward({
      endpoint: master.endpoint, method: isWrite ? 'PUT' : 'GET', path: '/v1/kv/k',
      body: isWrite ? '{"value":"v"}' : undefined, fromNodeId: 2, timeoutMs: 200, isWrite,
    });
    const began = performance.now();
    await assert.rejects(request(true), kvError('TIMEOUT', (error) => error.mayHaveBeenApplied));
    const elapsed = performance.now() - began;
    assert.ok(elapsed >= 180 && elapsed < 600, `answered after ${Math.round(elapsed)} ms`);
    assert.ok(Number(master.seen[0]?.headers['x-multipaxos-timeout-ms']) < 200, 'the master was given less time');

    const refused = performance.now();
    await assert.rejects(request(true), kvError('UNAVAILABLE', (error) => !error.mayHaveBeenApplied));
    await assert.rejects(request(false), kvError('UNAVAILABLE'));
    assert.ok(performance.now() - refused < 100, 'refused at once');
    assert.equal(master.seen.length, 1, 'nothing was sent to the silent master meanwhile');

    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal((await request(true)).status, 200, 'after the window the master is asked again');
    assert.equal((await request(false)).status, 200);
    assert.equal(master.seen.length, 3);
  });

test('a read that the master does not answer in time holds nothing back: the next write goes', async () => {
  // Silent for its first request (a read), then answering.
  const master = await fakeServer((_, response, index) => {
    if (index > 0) answer(response, 200, { key: 'k', version: 1 });
  });
  const forwarder = new Forwarder({ silentMs: 5_000 });
  forwarders.push(forwarder);
  await assert.rejects(forwarder.forward({
    endpoint: master.endpoint, method: 'GET', path: '/v1/kv/k', body: undefined, fromNodeId: 2, timeoutMs: 150,
    isWrite: false,
  }), kvError('TIMEOUT', (error) => !error.mayHaveBeenApplied));
  const reply = await forwarder.forward({
    endpoint: master.endpoint, method: 'PUT', path: '/v1/kv/k', body: '{"value":"v"}', fromNodeId: 2, timeoutMs: 1_000,
    isWrite: true,
  });
  assert.equal(reply.status, 200, 'the write was sent, not refused as to a silent master');
  assert.equal(master.seen.length, 2);
});

test('localAddress: forwarded requests leave from it (all of 127.0.0.0/8 is loopback on Linux)', async () => {
  const sources: string[] = [];
  const master = createServer((request, response) => {
    sources.push(request.socket.remoteAddress ?? '');
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"key":"k","version":1}');
  });
  await new Promise<void>((resolve) => master.listen(0, '127.0.0.1', resolve));
  const forwarder = new Forwarder({ localAddress: '127.0.0.3' });
  forwarders.push(forwarder);
  try {
    const reply = await forwarder.forward({
      endpoint: `http://127.0.0.1:${(master.address() as AddressInfo).port}`, method: 'PUT', path: '/v1/kv/k',
      body: '{"value":"v"}', fromNodeId: 2, timeoutMs: 2_000, isWrite: true,
    });
    assert.equal(reply.status, 200);
    assert.deepEqual(sources, ['127.0.0.3']);
  } finally {
    master.closeAllConnections();
    await new Promise((resolve) => master.close(resolve));
  }
});
