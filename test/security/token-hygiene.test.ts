// Tokens handled with care: a `#` inside a token is part of it (only `#` at a line's start or after
// a space starts a comment), a token file others may read draws a warning, and clients can read
// their token from a file (--token-file) so that it does not show in ps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clientSecurityOf } from '../../src/cli/client-security.js';
import { TokenStore } from '../../src/security/tokens.js';
import { RecordingLogger } from '../io/file-store-fixtures.js';
import { tempRoot } from '../support/local.js';

test('a # inside a token is part of it; a # after a space starts a comment', async () => {
  const path = join(await tempRoot('token-hash'), 'tokens');
  await writeFile(path, 'read abcdefghijklmnop#qrstuvwx\n# comment\nwrite zyxwvutsrqponmlk # the app\n', { mode: 0o600 });
  const store = TokenStore.open(path, { reloadIntervalMs: 0 });
  try {
    assert.equal(store.authenticate('Bearer abcdefghijklmnop#qrstuvwx'), 'read');
    assert.equal(store.authenticate('Bearer abcdefghijklmnop'), undefined, 'not the part before the #');
    assert.equal(store.authenticate('Bearer zyxwvutsrqponmlk'), 'write');
  } finally {
    store.close();
  }
});

test('a token file others may read is used with a warning; one only its owner reads is not', async () => {
  const dir = await tempRoot('token-mode');
  const path = join(dir, 'tokens');
  await writeFile(path, 'read abcdefghijklmnopqrstuvwx\n');
  for (const [mode, warned] of [[0o644, true], [0o640, true], [0o600, false]] as const) {
    await chmod(path, mode);
    const logger = new RecordingLogger();
    TokenStore.open(path, { reloadIntervalMs: 0, logger }).close();
    assert.equal(logger.lines.some((line) => line.level === 'warn' && /chmod 600/.test(line.message)), warned,
      `mode ${mode.toString(8)}`);
  }
});

test('--token-file reads the token from a file; with --token it is a usage error', async () => {
  const path = join(await tempRoot('token-file'), 'token');
  await writeFile(path, 'abcdefghijklmnopqrstuvwx\n', { mode: 0o600 });
  assert.equal(clientSecurityOf({ 'token-file': path }).token, 'abcdefghijklmnopqrstuvwx');
  assert.throws(() => clientSecurityOf({ 'token-file': path, token: 'other-token-0123456789' }), /not both/);
  assert.throws(() => clientSecurityOf({ 'token-file': join(path, 'missing') }), /--token-file/);
});
