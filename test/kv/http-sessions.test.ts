// Exactly-once writes over HTTP, on a real in-process cluster: a plain HTTP client with the session
// headers, and KvClient behind a proxy (test/support/answer-losing-proxy.ts) that loses the answer
// of a write the master applied (as when a master dies between choosing and answering): the client
// sends it again with the same number and gets the first answer; the key is written once. A session
// that expires while the retry is held back answers 410 SESSION_EXPIRED, and the client then says
// the write may have been applied.
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import type { KvService } from '../../src/kv/kv-service.js';
import { httpCall, jsonOf, kvPath, metricValue, waitFor } from './http-helpers.js';
import { keyInGroup, startKvCluster, type KvTestCluster } from './kv-fixtures.js';
import { kvError } from './fake-servers.js';
import { answerLosingProxy, type AnswerLosingProxy, type WritePlan } from '../support/answer-losing-proxy.js';

const cluster: KvTestCluster = await startKvCluster({ groups: 2 });
after(() => cluster.stop());
const closers: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function endpointOf(service: KvService): string {
  return cluster.endpoints[service.nodeId - 1] as string;
}

/** The group's serving master, once every node knows its endpoint (so any node forwards to it). */
async function servingMaster(group: number): Promise<KvService> {
  const master = await cluster.serving(group);
  await waitFor(`every node to learn the master of group ${group}`, () =>
    cluster.services.every((service) => service.masterHint(group)?.endpoint === endpointOf(master)));
  return master;
}

const sessionHeaders = (session: string, sequence: number): Record<string, string> =>
  ({ 'x-multipaxos-session': session, 'x-multipaxos-sequence': String(sequence) });

test('plain HTTP: open a session, number the writes, and a retry answers as the first time', async () => {
  const master = await servingMaster(0);
  const other = cluster.services.find((service) => service !== master) as KvService;
  const key = keyInGroup(master, 0, 'http-session');
  // Opened through a node that is not the master: forwarded, like a write.
  const opened = await httpCall(endpointOf(other), 'POST', `/v1/sessions?key=${encodeURIComponent(key)}`,
    { body: '{"ttlMs": 60000}' });
  assert.equal(opened.status, 200, opened.text);
  const { session, group, ttlMs } = jsonOf(opened) as { session: string; group: number; ttlMs: number };
  assert.equal(group, 0);
  assert.equal(ttlMs, 60_000);
  assert.match(session, /^0\.\d+$/);

  const put = (value: string, sequence: number, endpoint = endpointOf(master)) =>
    httpCall(endpoint, 'PUT', kvPath(key), { body: JSON.stringify({ value }), headers: sessionHeaders(session, sequence) });
  assert.deepEqual(jsonOf(await put('one', 1)), { key, version: 1 });
  // The same number again, through the other node (forwarded with its headers): not applied again.
  const retry = await put('one', 1, endpointOf(other));
  assert.equal(retry.status, 200, retry.text);
  assert.deepEqual(jsonOf(retry), { key, version: 1, duplicate: true });
  assert.deepEqual(jsonOf(await put('two', 2)), { key, version: 2 });
  const old = await put('one', 1);
  assert.equal(old.status, 409);
  assert.equal(jsonOf(old).error, 'STALE_SEQUENCE');
  // This copy was not applied, but the server cannot know it is not the first: an earlier copy was.
  assert.equal(jsonOf(old).mayHaveBeenApplied, true);
  const deleted = await httpCall(endpointOf(master), 'DELETE', kvPath(key), { headers: sessionHeaders(session, 3) });
  assert.deepEqual(jsonOf(deleted), { key, version: 3 });
  const again = await httpCall(endpointOf(master), 'DELETE', kvPath(key), { headers: sessionHeaders(session, 3) });
  assert.deepEqual(jsonOf(again), { key, version: 3, duplicate: true }, 'not KEY_NOT_FOUND: the first answer');
  assert.equal(jsonOf(await httpCall(endpointOf(master), 'GET', kvPath(key))).version, 3);
  const metrics = (await httpCall(endpointOf(master), 'GET', '/metrics')).text;
  assert.ok((metricValue(metrics, 'multipaxos_kv_session_duplicates_total') ?? 0) >= 1);
  const status = jsonOf(await httpCall(endpointOf(master), 'GET', '/status')) as { groups: { sessions: number }[] };
  assert.ok((status.groups[0]?.sessions ?? 0) >= 1, 'the status counts the group\'s sessions');
});

test('plain HTTP: bad session headers, another group\'s session, an unknown and an expired session are refused', async () => {
  const master = await servingMaster(1);
  const key = keyInGroup(master, 1, 'http-refused');
  const put = (headers: Record<string, string>) =>
    httpCall(endpointOf(master), 'PUT', kvPath(key), { body: '{"value": "v"}', headers });
  for (const headers of [
    { 'x-multipaxos-session': '1.1' }, // no sequence
    sessionHeaders('nonsense', 1),
    sessionHeaders('1.1', 0),
    sessionHeaders('0.1', 1), // group 0's session for a key of group 1
  ]) {
    const answer = await put(headers);
    assert.equal(answer.status, 400, `${JSON.stringify(headers)}: ${answer.text}`);
    assert.equal(jsonOf(answer).mayHaveBeenApplied, false);
  }
  const unknown = await put(sessionHeaders('1.999999', 1));
  assert.equal(unknown.status, 410, unknown.text);
  assert.equal(jsonOf(unknown).error, 'SESSION_EXPIRED');
  assert.equal(jsonOf(unknown).mayHaveBeenApplied, false, 'a session never registered applied nothing');

  // Time to live 2 s: the first write comes well within it, even on a loaded machine; the second after it.
  const opened = await httpCall(endpointOf(master), 'POST', '/v1/sessions?group=1', { body: '{"ttlMs": 2000}' });
  const { session } = jsonOf(opened) as { session: string };
  assert.equal((await put(sessionHeaders(session, 1))).status, 200);
  await sleep(2_500);
  // A retry of the applied write after the expiry: its first copy was applied, so it must not say "not applied".
  const expired = await put(sessionHeaders(session, 1));
  assert.equal(expired.status, 410, expired.text);
  assert.deepEqual([jsonOf(expired).error, jsonOf(expired).mayHaveBeenApplied], ['SESSION_EXPIRED', true]);
  assert.equal(jsonOf(await httpCall(endpointOf(master), 'GET', kvPath(key))).version, 1);

  for (const [path, body] of [['/v1/sessions', ''], ['/v1/sessions?key=a&group=1', ''], ['/v1/sessions?group=x', ''],
    ['/v1/sessions?group=1', '{"ttlMs": 0}'], ['/v1/sessions?group=1', '{"ttl": 5}'], ['/v1/sessions?group=9', '']]) {
    const answer = await httpCall(endpointOf(master), 'POST', path as string, { body: body as string });
    assert.equal(answer.status, 400, `${path} ${body}: ${answer.text}`);
  }
  assert.equal((await httpCall(endpointOf(master), 'GET', '/v1/sessions')).status, 405);
});

async function proxyTo(target: string, planFor: (writeIndex: number) => WritePlan): Promise<AnswerLosingProxy> {
  const proxy = await answerLosingProxy(target, planFor);
  closers.push(() => proxy.close());
  return proxy;
}

test('KvClient: a write whose answer was lost is sent again with its number and applied once', async () => {
  const master = await servingMaster(0);
  const key = keyInGroup(master, 0, 'lost-answer');
  const proxy = await proxyTo(endpointOf(master), (index) => ({ loseAnswer: index === 0 }));
  const client = new KvClient({ endpoints: [proxy.endpoint], timeoutMs: 8_000 });
  closers.push(() => client.close());
  const duplicatesBefore = metricValue((await httpCall(endpointOf(master), 'GET', '/metrics')).text,
    'multipaxos_kv_session_duplicates_total') ?? 0;
  assert.deepEqual(await client.put(key, 'once'), { key, version: 1 });
  assert.equal(proxy.writes.length, 2, 'sent twice');
  assert.deepEqual(proxy.writes[0], proxy.writes[1], 'with the same session and number');
  assert.equal(proxy.writes[0]?.sequence, '1');
  assert.equal(master.machine.read(0, key).version, 1, 'applied once');
  const duplicates = metricValue((await httpCall(endpointOf(master), 'GET', '/metrics')).text,
    'multipaxos_kv_session_duplicates_total') ?? 0;
  assert.equal(duplicates - duplicatesBefore, 1, 'the retry was answered from the stored reply');
  // The session goes on: the next write takes the next number and applies.
  assert.deepEqual(await client.put(key, 'twice', { version: 1 }), { key, version: 2 });
  assert.equal(proxy.writes[2]?.sequence, '2');

  // The same without sessions: the write of unknown outcome is not sent again, and says so.
  const lost = await proxyTo(endpointOf(master), () => ({ loseAnswer: true }));
  const lossy = new KvClient({ endpoints: [lost.endpoint], timeoutMs: 8_000, sessions: false });
  closers.push(() => lossy.close());
  await assert.rejects(lossy.put(key, 'maybe'), kvError('UNAVAILABLE', (error) => error.mayHaveBeenApplied));
  assert.equal(lost.writes.length, 1);
});

test('KvClient: a session that expires while the retry is held back answers SESSION_EXPIRED, maybe applied', async () => {
  const master = await servingMaster(1);
  const key = keyInGroup(master, 1, 'expiring');
  // The first copy is applied and its answer lost; the retry reaches the master after the session expired.
  const proxy = await proxyTo(endpointOf(master), (index) => index === 0 ? { loseAnswer: true } : { holdMs: 3_000 });
  const client = new KvClient({
    endpoints: [proxy.endpoint], timeoutMs: 12_000, attemptTimeoutMs: 6_000, sessionTtlMs: 2_000,
  });
  closers.push(() => client.close());
  await assert.rejects(client.put(key, 'v'), kvError('SESSION_EXPIRED', (error) => error.mayHaveBeenApplied));
  assert.equal(proxy.writes.length, 2);
  assert.equal(master.machine.read(1, key).version, 1, 'applied once: the retry was refused');

  // A session that expired between two calls (nothing of the new write can have applied): the client
  // opens another and the write goes through.
  const fresh = await proxyTo(endpointOf(master), () => ({}));
  const idle = new KvClient({ endpoints: [fresh.endpoint], timeoutMs: 8_000, sessionTtlMs: 2_000 });
  closers.push(() => idle.close());
  assert.deepEqual(await idle.put(key, 'a'), { key, version: 2 });
  await sleep(2_500);
  assert.deepEqual(await idle.put(key, 'b'), { key, version: 3 });
  assert.notEqual(fresh.writes[1]?.session, fresh.writes[2]?.session, 'a new session');
  assert.equal(fresh.writes.length, 3, 'the refused write, then the same write in the new session');
});

test('embedded KvService: a session of another group is refused, not taken for the same id in the key\'s group', async () => {
  const master0 = await servingMaster(0);
  const master1 = await servingMaster(1);
  const key = keyInGroup(master1, 1, 'embedded-session');
  const theirs = await master0.openSession({ group: 0 });
  // Group 1 gets a session with the same id (another client's), so the id alone would name it.
  let mine = await master1.openSession({ group: 1 });
  while (mine.session < theirs.session) mine = await master1.openSession({ group: 1 });
  const before = master1.get(key);
  await assert.rejects(master1.put(key, 'v', { session: { group: 0, id: mine.session, sequence: 1 } }),
    kvError('BAD_REQUEST', (error) => !error.mayHaveBeenApplied && /group/.test(error.message)));
  assert.deepEqual(await master1.get(key), await before);
  const written = await master1.put(key, 'v', { session: { group: 1, id: mine.session, sequence: 1 } });
  assert.equal((await master1.put(key, 'v', { session: { group: 1, id: mine.session, sequence: 1 } })).duplicate, true);
  assert.equal((await master1.get(key)).version, written.version);
});

test('plain HTTP: a stored VERSION_CONFLICT answered again says duplicate, and counts as one', async () => {
  const master = await servingMaster(1);
  const key = keyInGroup(master, 1, 'http-duplicate-conflict');
  const opened = await httpCall(endpointOf(master), 'POST', `/v1/sessions?key=${encodeURIComponent(key)}`);
  const { session } = jsonOf(opened) as { session: string };
  const duplicates = async (): Promise<number> =>
    metricValue((await httpCall(endpointOf(master), 'GET', '/metrics')).text, 'multipaxos_kv_session_duplicates_total') ?? 0;
  const conflicting = () => httpCall(endpointOf(master), 'PUT', kvPath(key),
    { body: '{"value": "v", "version": 5}', headers: sessionHeaders(session, 1) });
  const first = await conflicting();
  assert.equal(first.status, 409, first.text);
  assert.equal(jsonOf(first).duplicate, undefined);
  const before = await duplicates();
  const again = await conflicting();
  assert.equal(again.status, 409, again.text);
  assert.deepEqual([jsonOf(again).error, jsonOf(again).version, jsonOf(again).duplicate], ['VERSION_CONFLICT', 0, true]);
  assert.equal(await duplicates(), before + 1);
});
