// The hook a node gives its store for inline durable writes: one flush before the write, and one
// once the write's callers (continuations of the put the write resolves) have queued their sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendsAroundInlineWrite } from '../../src/node/sends-around-inline-write.js';

test('what the write\'s callers send after it is flushed in the same turn, before setImmediate', async () => {
  const events: string[] = [];
  const queued: string[] = [];
  const hook = sendsAroundInlineWrite(() => events.push(`flush [${queued.splice(0).join(',')}]`));
  let written!: () => void;
  const put = new Promise<void>((resolve) => { written = resolve; });
  // An acceptor's reply: sent a few continuations after its put resolves.
  void put.then(async () => {
    await Promise.resolve();
    queued.push('acceptReply');
  });
  queued.push('accept to a peer');
  hook(); // the store, just before its blocking write
  written(); // the write is durable: its put resolves
  await new Promise<void>((resolve) => setImmediate(() => { events.push('setImmediate'); resolve(); }));
  assert.deepEqual(events, ['flush [accept to a peer]', 'flush [acceptReply]', 'setImmediate']);
});
