// Token files and route roles, as units: parsing (errors name the line, never the token), the
// role each route needs, constant-time lookup that finds any entry, and reload of a changed file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requiredRole } from '../../src/kv/http-auth.js';
import { allows, generateToken, parseTokens, TokenStore } from '../../src/security/tokens.js';
import { tempRoot } from '../support/local.js';

test('a token file parses ROLE TOKEN lines with comments; errors name the line and never the token', () => {
  const entries = parseTokens('# header\n\nadmin  aaaaaaaaaaaaaaaaaaaa # the operator\nread bbbbbbbbbbbbbbbbbbbb\n', 'f');
  assert.deepEqual(entries.map((entry) => entry.role), ['admin', 'read']);
  assert.throws(() => parseTokens('owner cccccccccccccccccccc\n', 'f'), /f line 1: the role/);
  assert.throws(() => parseTokens('read\n', 'f'), /line 1: expected/);
  assert.throws(() => parseTokens('write short-secret\n', 'f'), (error: Error) =>
    /line 1: a token must be at least 16/.test(error.message) && !error.message.includes('short-secret'));
});

test('routes need the roles of the table; /status and /metrics open only when asked', () => {
  assert.equal(requiredRole('GET', '/v1/kv/a', false), 'read');
  assert.equal(requiredRole('PUT', '/v1/kv/a', false), 'write');
  assert.equal(requiredRole('DELETE', '/v1/kv/a', false), 'write');
  for (const path of ['/v1/members', '/v1/members/change', '/v1/master', '/v1/master/drop', '/v1/snapshots']) {
    assert.equal(requiredRole('GET', path, true), 'admin', path);
    assert.equal(requiredRole('POST', path, true), 'admin', path);
  }
  assert.equal(requiredRole('GET', '/status', false), 'read');
  assert.equal(requiredRole('GET', '/metrics', true), null);
  // A route the table does not name needs admin; a method that may change something needs write.
  assert.equal(requiredRole('GET', '/anything-else', true), 'admin');
  assert.equal(requiredRole('POST', '/metrics', true), 'write');
  assert.equal(requiredRole('PATCH', '/v1/kv/a', false), 'write');
  assert.equal(requiredRole('POST', '/v1/sessions', false), 'write');
  assert.equal(requiredRole('GET', '/v1/sessions/7', false), 'write');
  assert.ok(allows('admin', 'write') && allows('write', 'read') && !allows('read', 'write') && !allows('write', 'admin'));
});

test('a token store finds every entry\'s role, refuses others, and reloads a changed file', async () => {
  const dir = await tempRoot('tokens');
  const path = join(dir, 'tokens');
  const [a, b, c] = [generateToken(), generateToken(), generateToken()];
  await writeFile(path, `read ${a}\nwrite ${b}\n`);
  const store = TokenStore.open(path, { reloadIntervalMs: 0 });
  try {
    assert.equal(store.authenticate(`Bearer ${a}`), 'read');
    assert.equal(store.authenticate(`bearer ${b}`), 'write');
    assert.equal(store.authenticate(`Bearer ${c}`), undefined);
    assert.equal(store.authenticate(`Basic ${a}`), undefined);
    assert.equal(store.authenticate(undefined), undefined);
    assert.equal(store.authenticate(`Bearer ${a.slice(0, -1)}`), undefined);
    await writeFile(`${path}.new`, `admin ${c}\n`);
    await rename(`${path}.new`, path);
    assert.equal(store.poll(), true);
    assert.equal(store.authenticate(`Bearer ${c}`), 'admin');
    assert.equal(store.authenticate(`Bearer ${a}`), undefined, 'a removed token no longer works');
    // A broken file keeps the previous tokens.
    await writeFile(`${path}.new`, 'admin short\n');
    await rename(`${path}.new`, path);
    assert.equal(store.poll(), false);
    assert.equal(store.authenticate(`Bearer ${c}`), 'admin');
  } finally {
    store.close();
  }
});
