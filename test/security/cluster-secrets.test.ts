// `cluster up --tls` keeps its secrets in DIR/tls: when admin.token is missing but a token file is
// there (the operator added tokens, then deleted admin.token), the new admin token is appended and
// the operator's tokens stay valid; the files end up with mode 0600 whatever mode they had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureClusterSecrets } from '../../src/security/cluster-secrets.js';
import { TokenStore } from '../../src/security/tokens.js';
import { tempRoot } from '../support/local.js';

test('a missing admin.token adds an admin token to the token file, keeping the operator\'s, mode 0600', async () => {
  const dir = await tempRoot('cluster-secrets');
  await mkdir(join(dir, 'tls'), { recursive: true });
  const operator = 'operator-write-token-0123456789';
  await writeFile(join(dir, 'tls', 'tokens'), `write ${operator}`, { mode: 0o644 });
  const secrets = await ensureClusterSecrets(dir, [], '127.0.0.1');
  const store = TokenStore.open(secrets.tokens, { reloadIntervalMs: 0 });
  try {
    assert.equal(store.authenticate(`Bearer ${operator}`), 'write', await readFile(secrets.tokens, 'utf8'));
    assert.equal(store.authenticate(`Bearer ${secrets.adminToken}`), 'admin');
  } finally {
    store.close();
  }
  assert.equal((await stat(secrets.tokens)).mode & 0o777, 0o600);
  assert.equal((await stat(secrets.adminTokenFile)).mode & 0o777, 0o600);
});
