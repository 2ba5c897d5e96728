import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkQuery, requestTargetOf } from '../../src/kv/http-request.js';
import { KvError } from '../../src/kv/kv-error.js';
import { SeededRandom } from '../../src/util/random.js';

function viaUrl(raw: string): { pathname: string; query: [string, string][] } | undefined {
  try {
    const url = new URL(raw, 'http://kv.invalid');
    return { pathname: url.pathname, query: [...url.searchParams] };
  } catch {
    return undefined;
  }
}

test('a plain key path is taken as it is, with an empty query; anything else goes through the URL parser', () => {
  for (const raw of ['/v1/kv/a', '/v1/kv/user%3A42', "/v1/kv/a-b_c.d~e!$&'()*+,;=:@", '/', '/v1/kv/x/y']) {
    const target = requestTargetOf(raw);
    assert.equal(target.pathname, raw);
    assert.deepEqual([...target.searchParams], []);
    assert.ok(!(target instanceof URL), `${raw} skipped the URL parser`);
  }
  for (const raw of ['/v1/kv/a?stale=true', '/v1/kv/a#frag', '//host/v1/kv/a', '/v1/kv/a\\b', '/v1/kv/é', '/v1/kv/a b']) {
    assert.ok(requestTargetOf(raw) instanceof URL, `${raw} was parsed`);
  }
});

test('the query is what the URL parser finds, on generated targets', () => {
  const random = new SeededRandom(5);
  const alphabet = ['a', 'Z', '0', '/', '.', '%2F', '%', '?', '&', '=', '#', '\\', ':', '@', '~', '+', ' ', 'é', '!', '//'];
  let refused = 0;
  let plain = 0;
  for (let round = 0; round < 3000; round++) {
    const length = random.int(0, 12);
    const raw = `/${Array.from({ length }, () => alphabet[random.int(0, alphabet.length)]).join('')}`;
    const reference = viaUrl(raw);
    if (reference === undefined) {
      // What the URL parser refuses (`/\\[`, read as a host) is refused as it was.
      assert.throws(() => requestTargetOf(raw), (error: unknown) => error instanceof KvError && error.code === 'BAD_REQUEST', raw);
      refused++;
      continue;
    }
    const target = requestTargetOf(raw);
    assert.deepEqual([...target.searchParams], reference.query, raw);
    // A plain path keeps its raw form, which is the parser's pathname unless it has dot segments to resolve.
    if (!(target instanceof URL)) {
      assert.equal(target.pathname, raw);
      if (!/\/\.\.?(?=\/|$)/.test(raw)) assert.equal(reference.pathname, raw, raw);
      plain++;
    }
  }
  assert.ok(refused > 0 && plain > 100, `both kinds generated (${refused} refused, ${plain} plain)`);
});

test('a query parameter a route does not take is still refused on either path', () => {
  assert.throws(() => checkQuery(requestTargetOf('/v1/kv/a?nope=1'), []), (error: unknown) =>
    error instanceof KvError && error.code === 'BAD_REQUEST' && /nope/.test(error.message));
  assert.doesNotThrow(() => checkQuery(requestTargetOf('/v1/kv/a'), []));
});

test('a target the URL parser refuses is BAD_REQUEST', () => {
  assert.throws(() => requestTargetOf('//[::1'), (error: unknown) => error instanceof KvError && error.code === 'BAD_REQUEST');
});
