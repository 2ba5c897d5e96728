// KvClient's watch against scripted SSE servers on loopback (each stands for one node and answers
// every watch request the same way): a node's `compacted` sends the client to the next node and is
// final only once every endpoint said it for the cursor; a watch no node serves ends after
// `giveUpAfterMs` with `unavailable` and the cursor.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KvWatch, KvWatchError, type KvWatchEvent } from '../../src/kv/client-watch.js';

const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.close();
    server.closeAllConnections();
  }
});

/** A node that answers each watch with `body` (SSE text) and ends it; counts the requests it got. */
async function node(body: string): Promise<{ endpoint: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    requests.push(request.url ?? '');
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.end(body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const CURSOR = '0:5.0';
const compacted = `event: compacted\ndata: {"group":0,"cursor":"${CURSOR}","oldest":"9.0","reason":"gone here"}\n\n`;
const serving = `event: start\nid: ${CURSOR}\ndata: {"nodeId":2,"cursor":"${CURSOR}","prefix":""}\n\n` +
  'event: change\nid: 0:6.1\ndata: {"group":0,"key":"k","version":3,"value":"v","deleted":false}\n\n';

test('one node\'s compacted sends the watch on to the next node, which serves it', async () => {
  const restarted = await node(compacted);
  const holding = await node(serving);
  const watch = new KvWatch([restarted.endpoint, holding.endpoint], { prefix: '' }, { cursor: CURSOR });
  let first: KvWatchEvent | undefined;
  for await (const event of watch) {
    first = event;
    break;
  }
  assert.equal(first?.key, 'k');
  assert.equal(watch.nodeId, 2);
  assert.equal(restarted.requests.length, 1);
  assert.match(restarted.requests[0] as string, /cursor=0%3A5\.0/);
});

test('compacted is final once every endpoint said so for the cursor', async () => {
  const a = await node(compacted);
  const b = await node(compacted);
  const watch = new KvWatch([a.endpoint, b.endpoint], { prefix: '' }, { cursor: CURSOR });
  await assert.rejects(async () => {
    for await (const event of watch) assert.fail(`no event expected, got ${JSON.stringify(event)}`);
  }, (error: unknown) => error instanceof KvWatchError && error.reason === 'compacted' && error.cursor === CURSOR &&
    /none of the 2 endpoint\(s\) holds/.test(error.message));
  assert.equal(a.requests.length, 1);
  assert.equal(b.requests.length, 1);
});

test('a watch no node serves ends after giveUpAfterMs with unavailable and the cursor', async () => {
  const behind = await node(`event: unavailable\ndata: {"cursor":"${CURSOR}","reason":"not caught up"}\n\n`);
  const closed = await node('');
  const gone = closed.endpoint;
  servers.pop()?.close(); // nothing listens there any more
  const started = performance.now();
  const watch = new KvWatch([behind.endpoint, gone], { prefix: '' }, { cursor: CURSOR, giveUpAfterMs: 400 });
  await assert.rejects(async () => {
    for await (const event of watch) assert.fail(`no event expected, got ${JSON.stringify(event)}`);
  }, (error: unknown) => error instanceof KvWatchError && error.reason === 'unavailable' && error.cursor === CURSOR);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 400 && elapsed < 5_000, `gave up after ${elapsed} ms`);
  assert.ok(behind.requests.length >= 2, 'it kept trying until then');
  assert.throws(() => new KvWatch([gone], { prefix: '' }, { giveUpAfterMs: -1 }));
});
