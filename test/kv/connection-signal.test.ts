import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { connectionSignal, MAX_WAITERS } from '../../src/kv/connection-signal.js';

/** A connected pair over loopback: the server's end (what the HTTP server hands a request) and the client's. */
async function socketPair(): Promise<{ server: Socket; client: Socket; close: () => Promise<void> }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const [server] = await accepted;
  return {
    server, client,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

test('one signal per connection, aborted when the client closes it, whatever waits on it', async () => {
  const pair = await socketPair();
  try {
    const signal = connectionSignal(pair.server);
    assert.equal(connectionSignal(pair.server), signal, 'the requests of a connection share it');
    assert.equal(signal.aborted, false);
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => { warnings.push(warning); };
    process.on('warning', onWarning);
    // Pipelined requests' waiters at once: no leak warning, and every one hears the abort.
    let heard = 0;
    for (let i = 0; i < 50; i++) signal.addEventListener('abort', () => { heard++; }, { once: true });
    const aborted = once(signal, 'abort');
    pair.client.end();
    await aborted;
    assert.equal(signal.aborted, true);
    assert.equal(heard, 50);
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
    assert.deepEqual(warnings.map((warning) => warning.message), []);
  } finally {
    await pair.close();
  }
});

test('another connection has its own signal; a connection closed already gives an aborted one', async () => {
  const first = await socketPair();
  const second = await socketPair();
  try {
    assert.notEqual(connectionSignal(first.server), connectionSignal(second.server));
    const secondSignal = connectionSignal(second.server);
    second.server.destroy();
    await once(secondSignal, 'abort');
    assert.equal(secondSignal.aborted, true, 'closed by this side: its waiters stop too');
    const closed = await socketPair();
    closed.server.destroy();
    assert.equal(connectionSignal(closed.server).aborted, true);
    await closed.close();
    assert.equal(connectionSignal(first.server).aborted, false, 'the other connection is untouched');
  } finally {
    await first.close();
    await second.close();
  }
});

test('a listener left behind on a connection that lives long still raises Node\'s leak warning', async () => {
  const pair = await socketPair();
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => { warnings.push(warning); };
  process.on('warning', onWarning);
  try {
    const signal = connectionSignal(pair.server);
    const listeners: (() => void)[] = [];
    for (let i = 0; i < MAX_WAITERS; i++) {
      const listener = (): void => {};
      listeners.push(listener);
      signal.addEventListener('abort', listener);
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(warnings.length, 0, 'up to MAX_WAITERS at once is allowed');
    signal.addEventListener('abort', () => {});
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(warnings.length, 1, 'one more is taken for a leak');
    assert.match(warnings[0]?.message ?? '', /MaxListenersExceeded|memory leak/i);
    for (const listener of listeners) signal.removeEventListener('abort', listener);
  } finally {
    process.off('warning', onWarning);
    await pair.close();
  }
});
