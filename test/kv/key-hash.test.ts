import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { SeededRandom } from '../../src/util/random.js';

/** The hash with BigInt, written as PhxKV states it, to check the uint32 arithmetic against. */
function referenceHash(bytes: Uint8Array): bigint {
  let hash = 0n;
  for (const byte of bytes) hash = (hash * 7n + BigInt(byte)) % 2n ** 32n;
  return hash;
}

test('known values computed by hand', () => {
  assert.equal(groupOfKey('a', 3), 1, '97 % 3');
  assert.equal(groupOfKey('ab', 5), 2, '(97 * 7 + 98) = 777; 777 % 5');
  assert.equal(groupOfKey('abc', 7), 1, '777 * 7 + 99 = 5538; 5538 % 7');
  assert.equal(groupOfKey('', 3), 0, 'no bytes: hash 0');
  assert.equal(groupOfKey('anything', 1), 0);
});

test('hashes the UTF-8 bytes of multi-byte characters', () => {
  // é = C3 A9: 195 * 7 + 169 = 1534.
  assert.equal(groupOfKey('é', 10), 4);
  // € = E2 82 AC: (226 * 7 + 130) * 7 + 172 = 12156.
  assert.equal(groupOfKey('€', 1000), 156);
  assert.equal(groupOfKey('€', 3), 0);
  assert.equal(groupOfKey(new Uint8Array([0xe2, 0x82, 0xac]), 1000), 156, 'bytes and string agree');
});

test('long keys wrap like uint32 arithmetic', () => {
  const random = new SeededRandom(11);
  for (const length of [5, 12, 100, 4096]) {
    const bytes = Uint8Array.from({ length }, () => random.int(0, 256));
    const expected = referenceHash(bytes);
    assert.equal(groupOfKey(bytes, 0xffff_ffff), Number(expected % 0xffff_ffffn), `length ${length}`);
    assert.equal(groupOfKey(bytes, 1_000_003), Number(expected % 1_000_003n), `length ${length}`);
  }
  const allOnes = new Uint8Array(64).fill(0xff);
  assert.equal(groupOfKey(allOnes, 0xffff_ffff), Number(referenceHash(allOnes) % 0xffff_ffffn));
  const text = 'ключ-🔑-'.repeat(50);
  assert.equal(groupOfKey(text, 97), Number(referenceHash(new TextEncoder().encode(text)) % 97n));
});

test('a string key hashes as its UTF-8 bytes, ASCII or not, whatever the mix', () => {
  const random = new SeededRandom(23);
  // ASCII (the fast path), a character from each UTF-8 length, and ASCII turning non-ASCII late.
  const alphabet = ['a', 'Z', '~', '\u007f', '\u0000', 'é', '€', '🔑', '\u0080', '\uffff'];
  for (let round = 0; round < 500; round++) {
    const length = random.int(0, 40);
    const key = Array.from({ length }, () => alphabet[random.int(0, round % 2 === 0 ? 5 : alphabet.length)]).join('');
    const expected = referenceHash(new TextEncoder().encode(key));
    for (const groups of [1, 3, 8, 0xffff_ffff]) {
      assert.equal(groupOfKey(key, groups), Number(expected % BigInt(groups)), `${JSON.stringify(key)} in ${groups}`);
    }
  }
});

test('10,000 keys spread roughly evenly over the groups', () => {
  for (const groups of [3, 8]) {
    const counts = new Array<number>(groups).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const group = groupOfKey(`user:${i}`, groups);
      counts[group] = (counts[group] ?? 0) + 1;
    }
    const mean = 10_000 / groups;
    for (const count of counts) assert.ok(Math.abs(count - mean) < mean * 0.15, `${groups} groups: ${counts.join(',')}`);
  }
});

test('the number of groups must be a positive integer', () => {
  for (const groups of [0, -1, 1.5, NaN]) assert.throws(() => groupOfKey('a', groups), RangeError);
});
