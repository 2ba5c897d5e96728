import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeKvCommand, encodeKvCommand, KvCommandError, MAX_HTTP_ADDRESS_BYTES, MAX_KEY_BYTES, MAX_KV_VALUE_BYTES,
  type KvCommand,
} from '../../src/kv/kv-command.js';
import { SeededRandom } from '../../src/util/random.js';

const FENCE = { nodeId: 2, masterVersion: 9 };

function roundTrip(command: KvCommand): void {
  const bytes = encodeKvCommand(command);
  assert.deepEqual(decodeKvCommand(bytes), command);
  assert.deepEqual(encodeKvCommand(decodeKvCommand(bytes)), bytes, 'a decoded command re-encodes identically');
}

/** Builds raw inputs: numbers are single bytes; ['u32', n] and ['u64', n] are big-endian words; strings are UTF-8. */
type Part = number | string | Uint8Array | readonly ['u32' | 'u64', number];
function raw(...parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') out.push(part);
    else if (typeof part === 'string') out.push(...new TextEncoder().encode(part));
    else if (part instanceof Uint8Array) out.push(...part);
    else if (part[0] === 'u32') out.push(...u32(part[1]));
    else out.push(...u32(Math.floor(part[1] / 2 ** 32)), ...u32(part[1] % 2 ** 32));
  }
  return Uint8Array.from(out);
}

function u32(value: number): number[] {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

/** A valid fence header: format, kind, node id 2, master version 9. */
const header = (kind: number): Part[] => [0x4b, kind, ['u32', 2], ['u64', 9]];

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeKvCommand(bytes), (error: unknown) => {
    assert.ok(error instanceof KvCommandError, `not a KvCommandError: ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

test('the layout is format, kind, fence, then the fields, big-endian', () => {
  const bytes = encodeKvCommand({
    kind: 'put', key: 'k', value: Uint8Array.of(7, 8), expectedVersion: 3, fence: { nodeId: 2, masterVersion: 9 },
  });
  assert.deepEqual(bytes, raw(...header(1), 1, ['u64', 3], ['u32', 1], 'k', ['u32', 2], 7, 8));
  assert.deepEqual(encodeKvCommand({ kind: 'delete', key: 'k', expectedVersion: undefined, fence: FENCE }),
    raw(...header(4), 0, ['u32', 1], 'k'));
  assert.deepEqual(encodeKvCommand({ kind: 'delete', key: 'k', expectedVersion: undefined, fence: FENCE, tombstoneIfAbsent: true }),
    raw(...header(2), 0, ['u32', 1], 'k'), 'the delete of logs written before deletes of absent keys became no-ops');
  assert.deepEqual(encodeKvCommand({ kind: 'fence', fence: FENCE, httpAddress: 'h:1' }), raw(...header(3), ['u32', 3], 'h:1'));
});

test('every kind round-trips with edge values', () => {
  const fences = [{ nodeId: 1, masterVersion: 0 }, { nodeId: 0xffff_ffff, masterVersion: Number.MAX_SAFE_INTEGER }];
  const keys = ['k', '\0', '\uFEFFbom-first', 'ключ 🔑', 'x'.repeat(MAX_KEY_BYTES), '€'.repeat(MAX_KEY_BYTES / 4)];
  const values = [new Uint8Array(0), Uint8Array.of(0, 255), new Uint8Array(MAX_KV_VALUE_BYTES).fill(0xab)];
  for (const fence of fences) {
    for (const expectedVersion of [undefined, 0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      for (const key of keys) roundTrip({ kind: 'delete', key, expectedVersion, fence });
      roundTrip({ kind: 'delete', key: 'k', expectedVersion, fence, tombstoneIfAbsent: true });
      for (const value of values) roundTrip({ kind: 'put', key: 'k', value, expectedVersion, fence });
    }
    for (const httpAddress of ['', '127.0.0.1:8080', 'h'.repeat(MAX_HTTP_ADDRESS_BYTES), 'ä.example:80']) {
      roundTrip({ kind: 'fence', fence, httpAddress });
    }
  }
});

test('decodes a view into a larger buffer, and the value is a copy of it', () => {
  const encoded = encodeKvCommand({ kind: 'put', key: 'k', value: Uint8Array.of(1, 2, 3), expectedVersion: 0, fence: FENCE });
  const batch = new Uint8Array(encoded.length + 10);
  batch.set(encoded, 5);
  const command = decodeKvCommand(batch.subarray(5, 5 + encoded.length));
  assert.equal(command.kind, 'put');
  if (command.kind !== 'put') return;
  assert.notEqual(command.value.buffer, batch.buffer);
  batch.fill(0);
  assert.deepEqual(command.value, Uint8Array.of(1, 2, 3), 'changing the batch does not change the value');
  // Buffer.prototype.slice would return a view, so a Buffer input must be copied just the same.
  const fromBuffer = decodeKvCommand(Buffer.from(encoded));
  assert.ok(fromBuffer.kind === 'put' && !Buffer.isBuffer(fromBuffer.value));
});

test('encoding refuses what it cannot represent exactly', () => {
  interface Overrides {
    key?: string; value?: Uint8Array; expectedVersion?: number; nodeId?: number; masterVersion?: number;
  }
  const put = (overrides: Overrides): KvCommand => ({
    kind: 'put', key: overrides.key ?? 'k', value: overrides.value ?? new Uint8Array(1),
    expectedVersion: overrides.expectedVersion,
    fence: { nodeId: overrides.nodeId ?? 1, masterVersion: overrides.masterVersion ?? 0 },
  });
  const bad: [string, KvCommand][] = [
    ['empty key', put({ key: '' })],
    ['key too long', put({ key: 'x'.repeat(MAX_KEY_BYTES + 1) })],
    ['key too long in UTF-8', put({ key: '€'.repeat(MAX_KEY_BYTES / 3 + 1) })],
    ['lone surrogate', put({ key: 'a\uD800b' })],
    ['value too big', put({ value: new Uint8Array(MAX_KV_VALUE_BYTES + 1) })],
    ['node 0', put({ nodeId: 0 })],
    ['node 2^32', put({ nodeId: 2 ** 32 })],
    ['node 1.5', put({ nodeId: 1.5 })],
    ['master version -1', put({ masterVersion: -1 })],
    ['master version 2^53', put({ masterVersion: 2 ** 53 })],
    ['master version NaN', put({ masterVersion: NaN })],
    ['expected version -1', put({ expectedVersion: -1 })],
    ['expected version 0.5', put({ expectedVersion: 0.5 })],
    ['address too long', { kind: 'fence', fence: FENCE, httpAddress: 'h'.repeat(MAX_HTTP_ADDRESS_BYTES + 1) }],
    ['address lone surrogate', { kind: 'fence', fence: FENCE, httpAddress: '\uDC00' }],
    ['unknown kind', { kind: 'get', fence: FENCE } as unknown as KvCommand],
  ];
  for (const [name, command] of bad) assert.throws(() => encodeKvCommand(command), KvCommandError, name);
});

test('decoding rejects a wrong format byte or kind', () => {
  rejects(new Uint8Array(0), /truncated/);
  rejects(raw(0x4c, 3, ['u32', 2], ['u64', 9], ['u32', 0]), /format/);
  for (const kind of [0, 8, 255]) rejects(raw(...header(kind), ['u32', 0]), /kind/);
});

test('decoding rejects every truncation and any trailing byte', () => {
  const commands: KvCommand[] = [
    { kind: 'put', key: 'key', value: Uint8Array.of(1, 2), expectedVersion: 5, fence: FENCE },
    { kind: 'delete', key: 'key', expectedVersion: undefined, fence: FENCE },
    { kind: 'fence', fence: FENCE, httpAddress: 'h:1' },
  ];
  for (const command of commands) {
    const bytes = encodeKvCommand(command);
    for (let length = 0; length < bytes.length; length++) rejects(bytes.subarray(0, length), /truncated/);
    rejects(raw(bytes, 0), /1 trailing bytes/);
  }
});

test('decoding rejects lengths beyond the limits or beyond the buffer, and empty keys', () => {
  rejects(raw(...header(2), 0, ['u32', 0]), /key has 0 bytes/);
  rejects(raw(...header(2), 0, ['u32', MAX_KEY_BYTES + 1], new Uint8Array(MAX_KEY_BYTES + 1).fill(0x61)), /key has 4097/);
  rejects(raw(...header(2), 0, ['u32', 0xffff_ffff]), /key has 4294967295/);
  rejects(raw(...header(2), 0, ['u32', 4], 'abc'), /truncated/);
  rejects(raw(...header(1), 0, ['u32', 1], 'k', ['u32', MAX_KV_VALUE_BYTES + 1]), /value has 1048577/);
  rejects(raw(...header(1), 0, ['u32', 1], 'k', ['u32', 3], 1, 2), /truncated/);
  rejects(raw(...header(3), ['u32', MAX_HTTP_ADDRESS_BYTES + 1], 'h'.repeat(256)), /http address has 256/);
  rejects(raw(...header(3), ['u32', 2], 'h'), /truncated/);
});

test('decoding rejects invalid UTF-8 in keys and addresses', () => {
  // A stray byte, an overlong NUL, an encoded surrogate, a truncated sequence.
  const invalid = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82]].map((bytes) => Uint8Array.from(bytes));
  for (const bytes of invalid) {
    rejects(raw(...header(2), 0, ['u32', bytes.length], bytes), /key is not valid UTF-8/);
    rejects(raw(...header(3), ['u32', bytes.length], bytes), /http address is not valid UTF-8/);
  }
});

test('decoding rejects unsafe versions, bad presence bytes and node 0', () => {
  rejects(raw(0x4b, 3, ['u32', 2], 0x00, 0x20, 0, 0, 0, 0, 0, 0, ['u32', 0]), /master version is not a safe integer/);
  rejects(raw(...header(2), 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, ['u32', 1], 'k'), /expected version is not a safe/);
  rejects(raw(...header(2), 2, ['u64', 1], ['u32', 1], 'k'), /presence byte 2/);
  rejects(raw(0x4b, 3, ['u32', 0], ['u64', 9], ['u32', 0]), /node 0/);
  // The largest safe values are accepted.
  const top = decodeKvCommand(raw(0x4b, 2, ['u32', 1], ['u64', Number.MAX_SAFE_INTEGER], 1, ['u64', Number.MAX_SAFE_INTEGER],
    ['u32', 1], 'k'));
  assert.ok(top.kind === 'delete' && top.expectedVersion === Number.MAX_SAFE_INTEGER);
});

test('fuzz: mutated encodings decode to a command that re-encodes identically, or throw KvCommandError', () => {
  const random = new SeededRandom(20_240_601);
  const seeds: KvCommand[] = [
    { kind: 'put', key: 'user:1', value: Uint8Array.of(1, 2, 3, 4), expectedVersion: 7, fence: FENCE },
    { kind: 'put', key: 'é', value: new Uint8Array(0), expectedVersion: undefined, fence: { nodeId: 1, masterVersion: 0 } },
    { kind: 'delete', key: 'k🔑', expectedVersion: 0, fence: FENCE },
    { kind: 'delete', key: 'old', expectedVersion: undefined, fence: FENCE, tombstoneIfAbsent: true },
    { kind: 'fence', fence: { nodeId: 3, masterVersion: 2 ** 40 }, httpAddress: '10.0.0.3:8080' },
  ];
  let decoded = 0;
  for (let i = 0; i < 2_000; i++) {
    const bytes = mutate(random, encodeKvCommand(random.pick(seeds)));
    let command: KvCommand;
    try {
      command = decodeKvCommand(bytes);
    } catch (error) {
      assert.ok(error instanceof KvCommandError, `case ${i}: ${String(error)}`);
      continue;
    }
    decoded++;
    assert.deepEqual(encodeKvCommand(command), bytes, `case ${i}`);
  }
  assert.ok(decoded > 100 && decoded < 1_900, `both outcomes are exercised (${decoded} decoded)`);
});

function mutate(random: SeededRandom, input: Uint8Array): Uint8Array {
  let bytes: Uint8Array = Uint8Array.from(input);
  const mutations = random.int(1, 4);
  for (let m = 0; m < mutations; m++) {
    const at = random.int(0, bytes.length);
    switch (random.int(0, 5)) {
      case 0: bytes[at] = (bytes[at] ?? 0) ^ (1 << random.int(0, 8)); break;
      case 1: bytes[at] = random.int(0, 256); break;
      case 2: bytes = bytes.slice(0, random.int(0, bytes.length)); break;
      case 3: bytes = raw(bytes, random.int(0, 256)); break;
      default: bytes = raw(bytes.subarray(0, at), random.int(0, 256), bytes.subarray(at)); break;
    }
  }
  return bytes;
}
