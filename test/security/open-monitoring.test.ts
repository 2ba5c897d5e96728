// --open-monitoring over a real socket: with tokens, GET /metrics and /status answer without one
// only when the option is on; every other route still needs a token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { generateToken, TokenStore } from '../../src/security/tokens.js';
import { tempRoot } from '../support/local.js';

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
