// KvClient's session logic against scripted servers that speak the session protocol: when it opens
// a session again, and how it reports a session's refusal of a write's number. The server cannot tell
// a first copy of a number from a retry, so it says such a refusal may have been applied; the client
// knows whether an earlier attempt of its own may have been, and that is what it must report.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { KvClient } from '../../src/kv/client.js';
import { answer, closeFakeServers, failure, fakeServer, kvError, type Seen } from './fake-servers.js';

const clients: KvClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await closeFakeServers();
});

/**
 * A server that opens sessions "0.1", "0.2", ... and answers the writes with `write` (given the
 * write's session token and its index among the writes).
 */
async function sessionServer(
  write: (session: string, index: number, response: ServerResponse) => void,
): Promise<{ endpoint: string; opened: () => number; writes: () => Seen[] }> {
  let opened = 0;
  let writes = 0;
  const server = await fakeServer((request, response) => {
    if (request.method === 'POST' && request.url.startsWith('/v1/sessions')) {
      opened++;
      answer(response, 200, { group: 0, session: `0.${opened}`, ttlMs: 60_000 });
      return;
    }
    write(String(request.headers['x-multipaxos-session']), writes++, response);
  });
  return { endpoint: server.endpoint, opened: () => opened, writes: () => server.kvRequests() };
}

function clientOf(endpoint: string): KvClient {
  const client = new KvClient({ endpoints: [endpoint], timeoutMs: 5_000, attemptTimeoutMs: 2_000 });
  clients.push(client);
  return client;
}

/** The attempt's answer is lost: the connection is cut after the request arrived. */
function cut(response: ServerResponse): void {
  response.socket?.destroy();
}

const expired = failure('SESSION_EXPIRED', { mayHaveBeenApplied: true });
const stale = failure('STALE_SEQUENCE', { mayHaveBeenApplied: true });

test('a session found expired before any attempt could apply the write: a new one is opened and the write sent again', async () => {
  const server = await sessionServer((session, _, response) => {
    if (session === '0.1') answer(response, 410, expired);
    else answer(response, 200, { key: 'k', version: 1 });
  });
  assert.deepEqual(await clientOf(server.endpoint).put('k', 'v'), { key: 'k', version: 1 });
  assert.equal(server.opened(), 2);
  assert.deepEqual(server.writes().map((seen) => seen.headers['x-multipaxos-session']), ['0.1', '0.2']);
});

test('a session that expires after an attempt of unknown outcome: maybe applied, and no new session', async () => {
  // The older servers' answer (not applied) must not be trusted either: only the client knows.
  const server = await sessionServer((_, index, response) => {
    if (index === 0) cut(response);
    else answer(response, 410, failure('SESSION_EXPIRED'));
  });
  await assert.rejects(clientOf(server.endpoint).put('k', 'v'),
    kvError('SESSION_EXPIRED', (error) => error.mayHaveBeenApplied && /may have been applied/.test(error.message)));
  assert.equal(server.opened(), 1);
  assert.equal(server.writes().length, 2);
});

test('STALE_SEQUENCE after an attempt of unknown outcome: maybe applied, at once', async () => {
  const server = await sessionServer((_, index, response) => {
    if (index === 0) cut(response);
    else answer(response, 409, stale);
  });
  await assert.rejects(clientOf(server.endpoint).put('k', 'v'),
    kvError('STALE_SEQUENCE', (error) => error.mayHaveBeenApplied));
  assert.equal(server.writes().length, 2, 'the refusal ends the call: it is not sent again');
});

test('STALE_SEQUENCE to the first attempt: the write was not applied, and the session is not used again', async () => {
  const server = await sessionServer((session, index, response) => {
    if (index === 0) answer(response, 409, stale);
    else answer(response, 200, { key: 'k', version: 7, session });
  });
  const client = clientOf(server.endpoint);
  await assert.rejects(client.put('k', 'v'),
    kvError('STALE_SEQUENCE', (error) => !error.mayHaveBeenApplied && /not applied/.test(error.message)));
  await client.put('k', 'w');
  assert.deepEqual(server.writes().map((seen) => seen.headers['x-multipaxos-session']), ['0.1', '0.2']);
});

test('VERSION_CONFLICT after an attempt of unknown outcome stays definite: it is the answer to the number', async () => {
  const server = await sessionServer((_, index, response) => {
    if (index === 0) cut(response);
    else answer(response, 409, failure('VERSION_CONFLICT', { version: 4 }));
  });
  await assert.rejects(clientOf(server.endpoint).put('k', 'v', { version: 3 }),
    kvError('VERSION_CONFLICT', (error) => !error.mayHaveBeenApplied && error.version === 4));
  assert.equal(server.writes().length, 2);
  assert.equal(new Set(server.writes().map((seen) => seen.headers['x-multipaxos-sequence'])).size, 1,
    'the retry carries the same number');
});

test('a server of a version before sessions (no POST /v1/sessions): a clear error, the write not sent', async () => {
  const server = await fakeServer((request, response) => {
    answer(response, 404, failure('NOT_FOUND', { message: `no such path: ${request.url}` }));
  });
  await assert.rejects(clientOf(server.endpoint).put('k', 'v'), kvError('NOT_FOUND', (error) => !error.mayHaveBeenApplied &&
    /does not support sessions/.test(error.message) && /sessions: false/.test(error.message)));
  assert.deepEqual(server.kvRequests(), [], 'the write itself was not sent');
});

test('a session time to live above the servers\' limit (a day) is refused when the client is made', () => {
  assert.throws(() => new KvClient({ endpoints: ['http://127.0.0.1:1'], sessionTtlMs: 24 * 60 * 60 * 1000 + 1 }),
    kvError('BAD_REQUEST', (error) => /a day/.test(error.message)));
  new KvClient({ endpoints: ['http://127.0.0.1:1'], sessionTtlMs: 24 * 60 * 60 * 1000 }).close();
});
