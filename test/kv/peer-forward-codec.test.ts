// The bytes of requests forwarded to a master over the transport, and of its replies: every field
// survives the round trip byte for byte, and anything malformed is a ForwardFrameError, never
// trusted, never another exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeForwardFrame, encodeForwardSignal, encodeForwardReply, encodeForwardRequest, FORWARD_HELLO, FORWARD_HELLO_ACK,
  FORWARD_REPLY, FORWARD_RETRY_OVER_HTTP, FORWARD_REQUEST, ForwardFrameError, type ForwardedRequest,
} from '../../src/kv/peer-forward-codec.js';
import { seededRandom } from '../support/random.js';

test('a request with every field round-trips byte for byte (latin1 headers as Node hands them over)', () => {
  const request: ForwardedRequest = {
    id: 0xfffffffe, timeoutMs: 4_900, method: 'PUT', path: '/v1/kv/a%20b?x=%C3%A9',
    authorization: 'Bearer t\u00e9st-token-\u00ff', callerRole: 'write', session: '1.42', sequence: '7',
    body: Buffer.from('{"value":"h\u00e9llo \u{1f600}"}', 'utf8'),
  };
  const frame = decodeForwardFrame(encodeForwardRequest(request));
  assert.equal(frame.type, FORWARD_REQUEST);
  assert.deepEqual(frame.type === FORWARD_REQUEST ? frame.request : undefined, request);
});

test('a request with no optional field has none after decoding (absent is not empty)', () => {
  const frame = decodeForwardFrame(encodeForwardRequest({ id: 1, timeoutMs: 5, method: 'GET', path: '/v1/kv/k' }));
  assert.deepEqual(frame, { type: FORWARD_REQUEST, request: { id: 1, timeoutMs: 5, method: 'GET', path: '/v1/kv/k' } });
  const empty = decodeForwardFrame(encodeForwardRequest({ id: 2, timeoutMs: 5, method: 'DELETE', path: '/v1/kv/k',
    authorization: '', body: Buffer.alloc(0) }));
  assert.deepEqual(empty.type === FORWARD_REQUEST ? [empty.request.authorization, empty.request.body] : undefined,
    ['', Buffer.alloc(0)]);
});

test('a reply round-trips; a header named __proto__ is only a name', () => {
  const reply = { id: 9, status: 409, headers: { 'x-multipaxos-group': '2', __proto__x: 'y' },
    body: Buffer.from('{"error":"VERSION_CONFLICT"}\n') };
  const frame = decodeForwardFrame(encodeForwardReply(reply));
  assert.equal(frame.type, FORWARD_REPLY);
  if (frame.type !== FORWARD_REPLY) return;
  assert.equal(frame.reply.status, 409);
  assert.deepEqual({ ...frame.reply.headers }, reply.headers);
  assert.deepEqual(frame.reply.body, reply.body);
  const hostile = decodeForwardFrame(encodeForwardReply({ id: 1, status: 200,
    headers: Object.fromEntries([['__proto__', 'polluted']]), body: Buffer.alloc(0) }));
  assert.ok(hostile.type === FORWARD_REPLY);
  assert.equal(Object.getPrototypeOf(hostile.reply.headers), null);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('hello and its acknowledgement', () => {
  assert.deepEqual(decodeForwardFrame(encodeForwardSignal(FORWARD_HELLO, 0)), { type: FORWARD_HELLO, id: 0 });
  assert.deepEqual(decodeForwardFrame(encodeForwardSignal(FORWARD_HELLO_ACK, 5)), { type: FORWARD_HELLO_ACK, id: 5 });
  assert.deepEqual(decodeForwardFrame(encodeForwardSignal(FORWARD_RETRY_OVER_HTTP, 8)),
    { type: FORWARD_RETRY_OVER_HTTP, id: 8 });
});

test('a hostile reply: header names that are not tokens, values with CR, LF or NUL, statuses not final', () => {
  const reply = (headers: Record<string, string>, status = 200): Buffer =>
    encodeForwardReply({ id: 1, status, headers, body: Buffer.alloc(0) });
  const hostile: [string, Buffer][] = [
    ['CRLF in a value', reply({ 'x-multipaxos-node': '1\r\nset-cookie: stolen=1' })],
    ['LF in a value', reply({ 'x-multipaxos-endpoint': 'http://a\nb' })],
    ['NUL in a value', reply({ 'x-multipaxos-groups': '3\u0000' })],
    ['DEL in a value', reply({ 'x-multipaxos-group': '\u007f' })],
    ['a byte above ASCII in a value', reply({ 'x-multipaxos-group': '\u00e9' })],
    ['a space in a name', reply({ 'x multipaxos': '1' })],
    ['a colon in a name', reply({ 'x-a:b': '1' })],
    ['an empty name', reply({ '': '1' })],
    ['status 101', reply({}, 101)],
    ['status 199', reply({}, 199)],
  ];
  for (const [name, bytes] of hostile) assert.throws(() => decodeForwardFrame(bytes), ForwardFrameError, name);
  // What HTTP allows still passes: tabs and spaces inside a value, every token character in a name.
  const fine = decodeForwardFrame(reply({ "x-!#$%&'*+-.^_`|~09AZaz": 'a b\tc ~' }, 599));
  assert.ok(fine.type === FORWARD_REPLY);
  assert.equal(fine.reply.headers["x-!#$%&'*+-.^_`|~09AZaz"], 'a b\tc ~');
});

test('malformed frames: each one is a ForwardFrameError', () => {
  const good = encodeForwardRequest({ id: 3, timeoutMs: 100, method: 'PUT', path: '/v1/kv/k', authorization: 'Bearer x',
    body: Buffer.from('{"value":"v"}') });
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['unknown type', Buffer.from([99, 0, 0, 0, 0])],
    ['truncated header', good.subarray(0, 3)],
    ['unknown method', Buffer.from(good).fill(7, 9, 10)],
    ['zero timeout', Buffer.from(good).fill(0, 5, 9)],
    ['unknown field bits', Buffer.from(good).fill(0xff, 10, 11)],
    ['a byte left over', Buffer.concat([good, Buffer.from([0])])],
    ['hello with a tail', Buffer.concat([encodeForwardSignal(FORWARD_HELLO, 0), Buffer.from([1])])],
    ['reply with a status that is not HTTP', encodeForwardReply({ id: 1, status: 200, headers: {}, body: Buffer.alloc(0) })
      .fill(0, 5, 7)],
  ];
  for (let cut = 1; cut < good.length; cut++) cases.push([`cut at ${cut}`, good.subarray(0, cut)]);
  for (const [name, bytes] of cases) {
    assert.throws(() => decodeForwardFrame(bytes), ForwardFrameError, name);
  }
});

test('random bytes never throw anything but ForwardFrameError', () => {
  const random = seededRandom(14);
  const good = encodeForwardRequest({ id: 3, timeoutMs: 100, method: 'PUT', path: '/v1/kv/k', session: '1.2',
    sequence: '3', body: Buffer.from('{"value":"v"}') });
  for (let round = 0; round < 2_000; round++) {
    const bytes = Buffer.from(good);
    for (let flips = 1 + random.int(4); flips > 0; flips--) bytes[random.int(bytes.length)] = random.int(256);
    try {
      decodeForwardFrame(bytes);
    } catch (error) {
      assert.ok(error instanceof ForwardFrameError, String(error));
    }
  }
});

test('encoding refuses a field too long for its length prefix', () => {
  assert.throws(() => encodeForwardRequest({ id: 1, timeoutMs: 1, method: 'GET', path: 'x'.repeat(70_000) }),
    ForwardFrameError);
});
