// --open-monitoring over a real socket: with tokens, GET /metrics and /status (and /v1/node-status)
// answer without one only when the option is on, on a running node too; every other route still
// needs a token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { KvService } from '../../src/kv/kv-service.js';
import { generateToken, TokenStore } from '../../src/security/tokens.js';
import { httpCall } from '../kv/http-helpers.js';
import { freePort, tempRoot } from '../support/local.js';

function status(endpoint: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(new URL(path, endpoint), (incoming) => {
      incoming.resume();
      resolve(incoming.statusCode ?? 0);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

test('/metrics and /status are open only with openMonitoring; other routes need a token either way', async () => {
  const path = join(await tempRoot('open-monitoring'), 'tokens');
  await writeFile(path, `read ${generateToken()}\n`);
  for (const openMonitoring of [false, true]) {
    const server = await KvHttpServer.listen({
      host: '127.0.0.1', port: 0, tokens: TokenStore.open(path, { reloadIntervalMs: 0 }), openMonitoring,
    });
    try {
      assert.equal(await status(server.endpoint, '/metrics'), openMonitoring ? 200 : 401);
      // Not attached to a node yet: an open /status says so (503), a closed one asks for a token.
      assert.equal(await status(server.endpoint, '/status'), openMonitoring ? 503 : 401);
      assert.equal(await status(server.endpoint, '/v1/kv/a'), 401);
      assert.equal(await status(server.endpoint, '/v1/members'), 401);
    } finally {
      await server.close();
    }
  }
});

test('with openMonitoring, a running node answers /status and /v1/node-status without a token, and nothing else', async () => {
  const root = await tempRoot('open-monitoring-node');
  const path = join(root, 'tokens');
  const token = generateToken();
  await writeFile(path, `read ${token}\n`);
  const server = await KvHttpServer.listen({
    host: '127.0.0.1', port: 0, tokens: TokenStore.open(path, { reloadIntervalMs: 0 }), openMonitoring: true,
  });
  const service = await KvService.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: await freePort() }], dataDir: join(root, 'n1'), groups: 1,
    masterLeaseMs: 1_000, httpEndpoint: server.endpoint,
  });
  server.attach(service);
  try {
    const status = await httpCall(server.endpoint, 'GET', '/status');
    assert.equal(status.status, 200, status.text);
    assert.equal((JSON.parse(status.text) as { nodeId?: number }).nodeId, 1);
    assert.equal((await httpCall(server.endpoint, 'GET', '/v1/node-status')).status, 200);
    assert.equal((await httpCall(server.endpoint, 'GET', '/metrics')).status, 200);
    for (const [method, route] of [['GET', '/v1/kv/a'], ['GET', '/v1/cluster-status'], ['GET', '/v1/members'],
      ['POST', '/status']]) {
      assert.equal((await httpCall(server.endpoint, method as string, route as string)).status, 401, `${method} ${route}`);
    }
    const withToken = await httpCall(server.endpoint, 'GET', '/v1/cluster-status',
      { headers: { authorization: `Bearer ${token}` } });
    assert.equal(withToken.status, 200, withToken.text);
  } finally {
    await server.close();
    await service.stop();
  }
});
