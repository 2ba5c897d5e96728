/**
 * Which group owns a key: PhxKV's hash (`hash = hash * 7 + byte` over the key's UTF-8 bytes, in
 * uint32 arithmetic) modulo the number of groups. Every node and client must agree on it for as long
 * as the data lives, so it is never to be "improved": a different hash would move keys between groups.
 */
const encoder = new TextEncoder();

export function groupOfKey(key: string | Uint8Array, groups: number): number {
  if (!Number.isInteger(groups) || groups < 1 || groups > 0xffff_ffff) {
    throw new RangeError(`groups must be an integer in [1, 2^32 - 1], not ${groups}`);
  }
  if (typeof key === 'string') {
    const ascii = asciiHash(key);
    if (ascii !== undefined) return ascii % groups;
  }
  const bytes = typeof key === 'string' ? encoder.encode(key) : key;
  let hash = 0;
  for (const byte of bytes) {
    // Math.imul wraps the product to 32 bits like the C++ uint32 multiply; `>>> 0` makes it unsigned again.
    hash = (Math.imul(hash, 7) + byte) >>> 0;
  }
  return hash % groups;
}

/**
 * The hash of an all-ASCII key without encoding it first (its UTF-16 units are its UTF-8 bytes): the
 * servers hash every request's key several times. Undefined when the key has any other character.
 */
function asciiHash(key: string): number | undefined {
  let hash = 0;
  for (let index = 0; index < key.length; index++) {
    const unit = key.charCodeAt(index);
    if (unit >= 0x80) return undefined;
    hash = (Math.imul(hash, 7) + unit) >>> 0;
  }
  return hash;
}
