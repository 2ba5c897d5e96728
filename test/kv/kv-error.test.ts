// KvError's honesty defaults: a throw site that says nothing claims the safe answer (maybe applied),
// and so does an HTTP answer that does not say.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { errorOf, type HttpReply } from '../../src/kv/client-http.js';
import { KvClient } from '../../src/kv/client.js';
import { KvError, NOT_APPLIED } from '../../src/kv/kv-error.js';
import { answer, closeFakeServers, fakeServer, kvError } from './fake-servers.js';

afterEach(async () => {
  await closeFakeServers();
});

function reply(status: number, body: Record<string, unknown>): HttpReply {
  return { status, headers: {}, body };
}

test('mayHaveBeenApplied defaults to true: only a site that knows says "certainly not applied"', () => {
  assert.equal(new KvError('INTERNAL', 'x').mayHaveBeenApplied, true);
  assert.equal(new KvError('TIMEOUT', 'x', { cause: new Error('y') }).mayHaveBeenApplied, true);
  assert.equal(new KvError('BAD_REQUEST', 'x', NOT_APPLIED).mayHaveBeenApplied, false);
  const conflict = new KvError('VERSION_CONFLICT', 'x', { ...NOT_APPLIED, version: 3 });
  assert.equal(conflict.mayHaveBeenApplied, false);
  assert.equal(conflict.version, 3);
  assert.ok(Object.isFrozen(NOT_APPLIED));
});

test('the HTTP body always carries mayHaveBeenApplied', () => {
  assert.equal(new KvError('INTERNAL', 'x').toJSON().mayHaveBeenApplied, true);
  assert.equal(new KvError('NOT_MASTER', 'x', NOT_APPLIED).toJSON().mayHaveBeenApplied, false);
});

test('errorOf: an answer without the field is maybe applied for a write, never for a read', () => {
  const missing = reply(503, { error: 'NOT_MASTER', message: 'no word on the outcome' });
  assert.equal(errorOf(missing, true).mayHaveBeenApplied, true);
  assert.equal(errorOf(missing, true).code, 'NOT_MASTER');
  assert.equal(errorOf(missing, false).mayHaveBeenApplied, false);
  // A proxy's answer: no KV fields at all.
  const proxy = reply(502, {});
  assert.equal(errorOf(proxy, true).code, 'INTERNAL');
  assert.equal(errorOf(proxy, true).mayHaveBeenApplied, true);
  // Only an explicit false says "certainly not applied".
  assert.equal(errorOf(reply(503, { error: 'NO_MASTER', mayHaveBeenApplied: false }), true).mayHaveBeenApplied, false);
  assert.equal(errorOf(reply(503, { error: 'NO_MASTER', mayHaveBeenApplied: 'false' }), true).mayHaveBeenApplied, true);
  assert.equal(errorOf(reply(504, { error: 'TIMEOUT', mayHaveBeenApplied: true }), true).mayHaveBeenApplied, true);
  assert.equal(errorOf(reply(504, { error: 'TIMEOUT', mayHaveBeenApplied: true }), false).mayHaveBeenApplied, false);
});

test('a write answered NOT_MASTER without the field is not sent again; a read is', async () => {
  const node = await fakeServer((_, response) => answer(response, 503, { error: 'NOT_MASTER', message: 'who knows' }));
  // Without sessions: the fake server has none, and the rule checked is the sessionless one.
  const client = new KvClient({ endpoints: [node.endpoint], timeoutMs: 500, sessions: false });
  try {
    await assert.rejects(client.put('k', 'v'), kvError('NOT_MASTER', (error) => error.mayHaveBeenApplied));
    assert.equal(node.kvRequests().length, 1, 'a write that may have been applied is sent once');
    await assert.rejects(client.get('k'), kvError('TIMEOUT', (error) => !error.mayHaveBeenApplied));
    assert.ok(node.kvRequests().length > 2, 'a read is asked again');
  } finally {
    client.close();
  }
});
