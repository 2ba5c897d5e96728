// TcpTransport.flushNow: what this turn queued for the peers is written at once (the log store asks
// for it before it blocks the loop on a durable write), in one write per peer; what is sent later in
// the same turn still goes at the end of the turn; with nothing queued it writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ask, closeAll, sleep, startCluster, waitFor, type TestNode } from './transport-fixtures.js';

test('flushNow writes the queued messages at once; later sends of the turn still go at its end', async (t) => {
  const nodes = await startCluster([1, 2, 3]);
  t.after(() => closeAll(nodes));
  const [one, two, three] = nodes as [TestNode, TestNode, TestNode];
  await sleep(20);
  const before = one.stats().writes;
  for (let i = 0; i < 10; i++) {
    one.transport.send(0, 2, ask(1, i));
    one.transport.send(1, 3, ask(1, i));
  }
  assert.equal(one.stats().writes, before, 'nothing is written inside send');
  one.transport.flushNow();
  assert.equal(one.stats().writes - before, 2, 'one write per peer, before the turn ends');
  one.transport.send(0, 2, ask(1, 10));
  assert.equal(one.stats().writes - before, 2, 'a send after flushNow waits for the end of the turn');
  await waitFor(() => two.received.length === 11 && three.received.length === 10, 'every message arrives');
  assert.equal(one.stats().writes - before, 3);
  assert.deepEqual(two.received.map((entry) => entry.message.instanceId), Array.from({ length: 11 }, (_, i) => i));
  assert.deepEqual(three.received.map((entry) => [entry.group, entry.message.instanceId]),
    Array.from({ length: 10 }, (_, i) => [1, i]));
  one.transport.flushNow();
  await sleep(5);
  assert.equal(one.stats().writes - before, 3, 'nothing queued: nothing written');
});
