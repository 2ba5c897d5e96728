// Authorization decides on the very path the server routes on: with a read token, keys spelled
// with dot segments, percent-encoded dots, backslashes or doubled slashes cannot be written or
// deleted (the URL parser normalises those, the key route does not), any method but GET/HEAD needs
// at least write, and a path no route names needs admin. Over a real socket, with a real token file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { TokenStore } from '../../src/security/tokens.js';
import { tempRoot } from '../support/local.js';
import { httpCall } from '../kv/http-helpers.js';

const READ = 'read-token-0123456789abcdef';
const WRITE = 'write-token-0123456789abcdef';
const ADMIN = 'admin-token-0123456789abcdef';
let server: KvHttpServer;

before(async () => {
  const path = join(await tempRoot('path-authorization'), 'tokens');
  await writeFile(path, `read ${READ}\nwrite ${WRITE}\nadmin ${ADMIN}\n`);
  server = await KvHttpServer.listen({ host: '127.0.0.1', port: 0, tokens: TokenStore.open(path, { reloadIntervalMs: 0 }) });
});

after(() => server.close());

async function statusOf(method: string, path: string, token: string): Promise<number> {
  const body = method === 'PUT' ? JSON.stringify({ value: 'x' }) : undefined;
  const answer = await httpCall(server.endpoint, method, path, { body, headers: { authorization: `Bearer ${token}` } });
  return answer.status;
}

// The server is not attached to a node: a request that gets past authorization is answered 503
// (the node is starting), one that does not is 403.
const PASSED = 503;

test('a read token cannot write or delete keys spelled with dot segments, %2e, backslashes or //', async () => {
  const tricky = ['/v1/kv/..', '/v1/kv/a/../../b', '/v1/kv/%2e%2e', '/v1/kv/.%2E', '/v1/kv/a\\..\\..\\b',
    '/v1/kv/%2e%2e/%2e%2e/status', '/v1/kv//..', '//v1/kv/x', '/v1/kv/./x'];
  for (const path of tricky) {
    for (const method of ['PUT', 'DELETE', 'POST', 'PATCH']) {
      assert.equal(await statusOf(method, path, READ), 403, `${method} ${path} with a read token`);
    }
    // Reading such a key is what a read token is for.
    if (!path.startsWith('//')) assert.equal(await statusOf('GET', path, READ), PASSED, `GET ${path}`);
  }
  // A write token may write the key ".." (it is a key like any other).
  assert.equal(await statusOf('PUT', '/v1/kv/..', WRITE), PASSED);
  assert.equal(await statusOf('DELETE', '/v1/kv/a/../../b', WRITE), PASSED);
});

test('any method but GET and HEAD needs write; a path no route names needs admin', async () => {
  for (const path of ['/status', '/metrics', '/v1/node-status', '/v1/cluster-status', '/ui', '/nowhere']) {
    assert.equal(await statusOf('POST', path, READ), 403, `POST ${path}`);
  }
  // The listing (GET /v1/kv?prefix=) is a read; writing to it is not.
  assert.equal(await statusOf('GET', '/v1/kv', READ), PASSED, 'GET /v1/kv (a listing) with a read token');
  assert.equal(await statusOf('POST', '/v1/kv', READ), 403, 'POST /v1/kv with a read token');
  for (const path of ['/nowhere', '/v1/kvx/a', '//status', '/v1/members/../kv/a']) {
    assert.equal(await statusOf('GET', path, READ), 403, `GET ${path} with a read token`);
    assert.equal(await statusOf('GET', path, WRITE), 403, `GET ${path} with a write token`);
    assert.notEqual(await statusOf('GET', path, ADMIN), 403, `GET ${path} with an admin token`);
  }
  assert.equal(await statusOf('GET', '/metrics', READ), 200);
});
