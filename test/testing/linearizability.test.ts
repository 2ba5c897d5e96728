// The linearizability checker and the KV model, on hand-written histories whose verdict is known,
// on random histories that are linearizable by construction (and on corruptions of them that cannot
// be), and against a brute-force checker on small histories. A checker that says 'ok' too easily
// would make every green run of the process test meaningless, hence the many illegal cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError, NOT_APPLIED } from '../../src/kv/kv-error.js';
import { historyRecorder, kvModel, type KvInput, type KvOperation, type KvOutput } from '../../src/testing/kv-model.js';
import {
  checkLinearizability, UNKNOWN, type Model, type Operation, type Unknown,
} from '../../src/testing/linearizability.js';
import { FakeKv, forgeStaleRead, generateHistory } from '../support/kv-histories.js';
import { seededRandom } from '../support/random.js';

const K = 'k';

/** Shorthands for hand-written histories: [call, ret] then what it did. */
function get(call: number, ret: number, value: string | null, version: number, key = K, clientId = 0): KvOperation {
  return { clientId, input: { kind: 'get', key }, call, ret, output: { value, version } };
}

function put(
  call: number, ret: number, value: string, output: KvOutput | Unknown,
  options: { expected?: number; key?: string; clientId?: number } = {},
): KvOperation {
  const input: KvInput = { kind: 'put', key: options.key ?? K, value, expectedVersion: options.expected };
  return { clientId: options.clientId ?? 0, input, call, ret: output === UNKNOWN ? Infinity : ret, output };
}

function del(
  call: number, ret: number, output: KvOutput | Unknown, options: { expected?: number; key?: string } = {},
): KvOperation {
  const input: KvInput = { kind: 'delete', key: options.key ?? K, expectedVersion: options.expected };
  return { clientId: 0, input, call, ret: output === UNKNOWN ? Infinity : ret, output };
}

const ok = (version: number): KvOutput => ({ ok: true, version });
const conflict = (version: number): KvOutput => ({ ok: false, code: 'VERSION_CONFLICT', version });
const notFound = (version: number): KvOutput => ({ ok: false, code: 'KEY_NOT_FOUND', version });

function verdict(history: readonly KvOperation[]): string {
  return checkLinearizability(kvModel, history).result;
}

test('a sequential history that follows the model is linearizable', () => {
  const history = [
    get(0, 1, null, 0), put(2, 3, 'a', ok(1)), get(4, 5, 'a', 1), put(6, 7, 'b', ok(2)),
    put(8, 9, 'c', conflict(2), { expected: 1 }), put(10, 11, 'c', ok(3), { expected: 2 }), get(12, 13, 'c', 3),
  ];
  const result = checkLinearizability(kvModel, history);
  assert.equal(result.result, 'ok');
  assert.equal(result.partitions, 1);
  assert.equal(result.operations, history.length);
});

test('concurrent operations are linearizable when some interleaving explains every output', () => {
  // Porcupine's README example: put(100) concurrent with a read that sees it and, overlapping that
  // read, one that does not (it takes effect first).
  assert.equal(verdict([put(0, 100, 'x', ok(1)), get(25, 75, 'x', 1, K, 1), get(30, 60, null, 0, K, 2)]), 'ok');
  // Reads that end in the opposite order of the writes they saw still fit: both writes overlap both reads.
  assert.equal(verdict([
    put(0, 10, 'a', ok(1), { clientId: 1 }), put(0, 10, 'b', ok(2), { clientId: 2 }),
    get(1, 9, 'a', 1, K, 3), get(2, 8, 'b', 2, K, 4),
  ]), 'ok');
  // Touching intervals are concurrent (closed intervals): the read at 5 may come before the write returning at 5.
  assert.equal(verdict([put(0, 5, 'a', ok(1)), get(5, 6, null, 0, K, 1)]), 'ok');
});

test('a read that misses a write acknowledged before it began is illegal', () => {
  // Porcupine's README counterexample: get→0 begins after a get→x returned, while put(x) is still open.
  assert.equal(verdict([put(0, 100, 'x', ok(1)), get(10, 20, 'x', 1, K, 1), get(25, 40, null, 0, K, 2)]), 'illegal');
  assert.equal(verdict([put(0, 10, 'x', ok(1)), get(20, 30, null, 0, K, 1)]), 'illegal');
  // The classic lease bug: a write acknowledged, then a read served from the old state.
  const stale = checkLinearizability(kvModel, [put(0, 1, 'a', ok(1)), put(2, 3, 'b', ok(2)), get(4, 5, 'a', 1)]);
  assert.equal(stale.result, 'illegal');
  assert.equal(stale.partition, K);
  // The explanation names the read and the write it missed.
  assert.match(stale.explanation ?? '', /get "k" -> "a" @1/);
  assert.match(stale.explanation ?? '', /put "k" "b" -> ok @2/);
});

test('a read of a value nobody wrote is illegal', () => {
  assert.equal(verdict([put(0, 1, 'a', ok(1)), get(2, 3, 'z', 1)]), 'illegal');
  assert.equal(verdict([get(0, 1, 'a', 1)]), 'illegal');
  // The right value with a version it never had is just as wrong.
  assert.equal(verdict([put(0, 1, 'a', ok(1)), get(2, 3, 'a', 7)]), 'illegal');
});

test('a lost acknowledged write is illegal', () => {
  // put a was acknowledged at version 1; a later write starting from version 0 again means it was lost.
  assert.equal(verdict([put(0, 1, 'a', ok(1)), put(2, 3, 'b', ok(1)), get(4, 5, 'b', 1)]), 'illegal');
  // Or the later reads never see it although nothing else was written.
  assert.equal(verdict([put(0, 1, 'a', ok(1)), get(2, 3, null, 0), get(4, 5, null, 0)]), 'illegal');
});

test('a version going backwards is illegal, even with the same value', () => {
  const history = [put(0, 1, 'a', ok(1)), put(2, 3, 'a', ok(2)), get(4, 5, 'a', 2), get(6, 7, 'a', 1)];
  assert.equal(verdict(history), 'illegal');
  assert.equal(verdict(history.slice(0, 3)), 'ok');
});

test('a write with an unknown outcome may take effect later, or never', () => {
  // It shows up in a read long after the client gave up.
  const late = [put(0, 0, 'x', UNKNOWN), get(5, 6, null, 0), get(50, 60, 'x', 1), put(70, 71, 'y', ok(2))];
  assert.equal(verdict(late), 'ok');
  // It never shows up, and later writes count versions without it.
  assert.equal(verdict([put(0, 0, 'x', UNKNOWN), get(5, 6, null, 0), put(7, 8, 'y', ok(1)), get(9, 10, 'y', 1)]), 'ok');
  // But not before it was called.
  assert.equal(verdict([get(0, 1, 'x', 1), put(2, 0, 'x', UNKNOWN)]), 'illegal');
  // Nor twice.
  const twice = [put(0, 0, 'x', UNKNOWN), get(5, 6, 'x', 1), put(7, 8, 'y', ok(2)), get(9, 10, 'x', 3)];
  assert.equal(verdict(twice), 'illegal');
});

test('an unknown conditional write whose guard fails is a no-op wherever it is placed', () => {
  // Guard 0 fails once 'a' is in (version 1): the write cannot apply after that, and must not be required to.
  const history = [
    put(0, 1, 'a', ok(1)), put(2, 0, 'b', UNKNOWN, { expected: 0 }), get(3, 4, 'a', 1), put(5, 6, 'c', ok(2)),
    get(7, 8, 'c', 2),
  ];
  assert.equal(verdict(history), 'ok');
  // Called before 'a', it may also have applied first, and then 'a' came at version 2.
  assert.equal(verdict([put(0, 0, 'b', UNKNOWN, { expected: 0 }), get(1, 2, 'b', 1), put(3, 4, 'a', ok(2))]), 'ok');
  // An applied conditional write needs its guard: from version 1 it cannot produce version 2 holding 'b'.
  const guarded = [put(0, 1, 'a', ok(1)), put(2, 0, 'b', UNKNOWN, { expected: 0 }), get(3, 4, 'b', 2)];
  assert.equal(verdict(guarded), 'illegal');
});

test('compare-and-set: of two concurrent writes from the same version only one succeeds', () => {
  const base = [put(0, 1, 'a', ok(1))];
  const b = (output: KvOutput): KvOperation => put(2, 10, 'b', output, { expected: 1, clientId: 1 });
  const c = (output: KvOutput): KvOperation => put(3, 9, 'c', output, { expected: 1, clientId: 2 });
  assert.equal(verdict([...base, b(ok(2)), c(conflict(2)), get(11, 12, 'b', 2)]), 'ok');
  assert.equal(verdict([...base, b(conflict(2)), c(ok(2)), get(11, 12, 'c', 2)]), 'ok');
  assert.equal(verdict([...base, b(ok(2)), c(ok(2))]), 'illegal', 'both succeeded');
  assert.equal(verdict([...base, b(conflict(1)), c(conflict(1))]), 'illegal', 'both refused although the guard held');
  assert.equal(verdict([...base, b(ok(2)), c(conflict(1))]), 'illegal', 'a conflict reports the version it met');
  assert.equal(verdict([...base, b(ok(2)), c(conflict(2)), get(11, 12, 'c', 2)]), 'illegal', 'the refused value');
  // A conflict names the current version, and a write from it succeeds.
  const retried = [put(2, 3, 'x', conflict(1), { expected: 0 }), put(4, 5, 'x', ok(2), { expected: 1 })];
  assert.equal(verdict([...base, ...retried]), 'ok');
});

test('a delete leaves the key at a new version that reads report with a null value', () => {
  const deleted = [put(0, 1, 'a', ok(1)), del(2, 3, ok(2))];
  assert.equal(verdict([...deleted, get(4, 5, null, 2)]), 'ok');
  assert.equal(verdict([...deleted, get(4, 5, null, 0)]), 'illegal', 'the version is kept');
  assert.equal(verdict([...deleted, get(4, 5, 'a', 2)]), 'illegal', 'the value is gone');
  assert.equal(verdict([...deleted, put(4, 5, 'b', ok(3), { expected: 2 }), get(6, 7, 'b', 3)]), 'ok');
  assert.equal(verdict([...deleted, del(4, 5, conflict(2), { expected: 1 })]), 'ok');
  // An unknown delete that applied is seen as a tombstone with its version.
  assert.equal(verdict([put(0, 1, 'a', ok(1)), del(2, 0, UNKNOWN), get(5, 6, null, 2)]), 'ok');
});

test('a delete of a key that is not set changes nothing and answers KEY_NOT_FOUND with its version', () => {
  // Never written: no tombstone, no version.
  assert.equal(verdict([del(0, 1, notFound(0)), get(2, 3, null, 0)]), 'ok');
  assert.equal(verdict([del(0, 1, ok(1))]), 'illegal', 'a never-written key cannot be deleted');
  assert.equal(verdict([del(0, 1, notFound(0)), get(2, 3, null, 1)]), 'illegal', 'the version did not move');
  assert.equal(verdict([del(0, 1, notFound(0), { expected: 0 })]), 'ok', 'the guard holds, the key is absent');
  assert.equal(verdict([del(0, 1, notFound(0), { expected: 3 })]), 'illegal', 'a failing guard is a conflict');
  assert.equal(verdict([del(0, 1, conflict(0), { expected: 3 })]), 'ok');
  // Deleted already: the second delete changes nothing.
  const deleted = [put(0, 1, 'a', ok(1)), del(2, 3, ok(2))];
  assert.equal(verdict([...deleted, del(4, 5, notFound(2)), get(6, 7, null, 2)]), 'ok');
  assert.equal(verdict([...deleted, del(4, 5, ok(3))]), 'illegal', 'a deleted key cannot be deleted again');
  assert.equal(verdict([...deleted, del(4, 5, notFound(1))]), 'illegal', 'the version it names is the current one');
  assert.equal(verdict([put(0, 1, 'a', ok(1)), del(2, 3, notFound(1))]), 'illegal', 'a set key is deleted');
  // Concurrent with the put that creates the key, KEY_NOT_FOUND is legal (ordered before it).
  assert.equal(verdict([put(0, 3, 'a', ok(1)), del(1, 2, notFound(0)), get(4, 5, 'a', 1)]), 'ok');
  // An unknown delete of an absent key took effect, if at all, as nothing.
  assert.equal(verdict([del(0, 0, UNKNOWN), get(2, 3, null, 0)]), 'ok');
  assert.equal(verdict([del(0, 0, UNKNOWN), get(2, 3, null, 1)]), 'illegal');
});

test('partitions are checked on their own: one illegal key among many legal ones is found and named', () => {
  const history: KvOperation[] = [];
  for (let key = 0; key < 60; key++) {
    const name = `key-${key}`;
    history.push(put(key, key + 1, `v${key}`, ok(1), { key: name }), get(key + 2, key + 3, `v${key}`, 1, name));
  }
  // Linearizable on each key on its own (the real-time order across keys says nothing).
  assert.equal(verdict(history), 'ok');
  history.splice(37, 0, get(500, 501, null, 0, 'key-17'));
  const result = checkLinearizability(kvModel, history);
  assert.equal(result.result, 'illegal');
  assert.equal(result.partition, 'key-17');
  assert.equal(result.partitions, 60);
  assert.match(result.explanation ?? '', /partition "key-17" is not linearizable/);
  assert.deepEqual(result.counterexample?.blocked.input, { kind: 'get', key: 'key-17' });
});

test('the step budget ends a long search with unknown, naming what is undecided', () => {
  const { operations } = generateHistory(seededRandom(7), { operations: 400, keys: 4, clients: 6 });
  assert.equal(checkLinearizability(kvModel, operations).result, 'ok');
  const result = checkLinearizability(kvModel, operations, { maxSteps: 50, stepsPerTurn: 10 });
  assert.equal(result.result, 'unknown');
  assert.ok(result.steps <= 50);
  assert.ok((result.undecided ?? []).length > 0);
  assert.equal(result.partition, result.undecided?.[0]);
  assert.match(result.explanation ?? '', /step budget/);
});

test('bad timestamps are refused', () => {
  assert.throws(() => checkLinearizability(kvModel, [get(5, 4, null, 0)]), RangeError);
  assert.throws(() => checkLinearizability(kvModel, [get(Number.NaN, 4, null, 0)]), RangeError);
  assert.throws(() => checkLinearizability(kvModel, [get(0, 1, null, 0)], { maxSteps: 0 }), RangeError);
});

test('random histories linearizable by construction are ok; a forged stale read in them is illegal', (t) => {
  let corruptedIllegal = 0;
  let corrupted = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const random = seededRandom(seed);
    const { operations } = generateHistory(random, {
      operations: 150, keys: 3, clients: 5, unknownRate: 0.05, phantomRate: 0.05,
    });
    const result = checkLinearizability(kvModel, operations);
    assert.equal(result.result, 'ok', `seed ${seed}: ${result.explanation}`);

    // Any corruption of one read: usually illegal, though a read overlapping writes may still fit.
    const reads = operations.map((operation, index) => ({ operation, index })).filter(({ operation }) =>
      operation.input.kind === 'get');
    const victim = random.pick(reads);
    const output = victim.operation.output as { value: string | null; version: number };
    const forged = random.chance(0.5) ? { ...output, version: output.version + random.pick([-1, 1]) }
      : { ...output, value: `${output.value ?? ''}?` };
    const mutated = operations.map((operation, index) =>
      index === victim.index ? { ...operation, output: forged } : operation);
    corrupted++;
    if (checkLinearizability(kvModel, mutated).result === 'illegal') corruptedIllegal++;

    // The hand-picked corruption, which no order can explain: a read that began after a write was
    // acknowledged returns the state from before that write.
    const stale = forgeStaleRead(operations);
    assert.ok(stale !== undefined, `seed ${seed}: a read after an acknowledged write exists`);
    const verdictOfForgery = checkLinearizability(kvModel, stale.history);
    assert.equal(verdictOfForgery.result, 'illegal', `seed ${seed}: the forged stale read was accepted`);
    assert.equal(verdictOfForgery.partition, stale.read.input.key);
  }
  t.diagnostic(`${corruptedIllegal} of ${corrupted} randomly corrupted reads made the history illegal`);
  assert.ok(corruptedIllegal >= corrupted * 0.8,
    `only ${corruptedIllegal} of ${corrupted} corrupted reads were illegal`);
});

/** Every order of the operations that respects real time, tried one by one: the definition, for small histories. */
function bruteForce<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[]): boolean {
  const used = new Array<boolean>(history.length).fill(false);
  const extend = (state: S, count: number): boolean => {
    if (count === history.length) return true;
    for (let index = 0; index < history.length; index++) {
      if (used[index]) continue;
      const operation = history[index] as Operation<I, O>;
      // Nothing unplaced may have returned before this one was called.
      if (history.some((other, at) => !used[at] && at !== index && other.ret < operation.call)) continue;
      const next = model.step(state, operation.input, operation.output);
      if (next === undefined) continue;
      used[index] = true;
      const found = extend(next, count + 1);
      used[index] = false;
      if (found) return true;
    }
    return false;
  };
  return extend(model.init(), 0);
}

test('on small random histories, legal or not, the checker agrees with brute force', (t) => {
  const random = seededRandom(2024);
  const tally = { ok: 0, illegal: 0 };
  for (let round = 0; round < 5_000; round++) {
    const size = 1 + random.int(7);
    const { operations } = generateHistory(random, {
      operations: size, keys: 1, clients: 1 + random.int(4), unknownRate: 0.1, phantomRate: 0.1, maxLatency: 3,
    });
    // Perturb some outputs and timestamps so that about half of the histories are not linearizable.
    const history = operations.map((operation) => {
      if (!random.chance(0.15) || operation.output === UNKNOWN) return operation;
      const output = operation.output;
      const shift = random.pick([-1, 1]);
      return { ...operation, output: { ...output, version: Math.max(0, output.version + shift) } };
    });
    const expected = bruteForce(kvModel, history);
    const result = checkLinearizability(kvModel, history);
    assert.equal(result.result, expected ? 'ok' : 'illegal', `round ${round}: ${JSON.stringify(history)}`);
    tally[expected ? 'ok' : 'illegal']++;
  }
  t.diagnostic(`verdicts: ${JSON.stringify(tally)}`);
  assert.ok(tally.ok > 300 && tally.illegal > 300, `both verdicts occur: ${JSON.stringify(tally)}`);
});

type RegisterInput = { readonly write: number } | { readonly read: true };

/**
 * A plain register without versions, values 0..2: values repeat, so far more orders fit than with the
 * KV model and its versions, and no `couldStepLater` prunes; the search's generic paths get exercised.
 */
const register: Model<number, RegisterInput, number> = {
  init: () => 0,
  step: (state, input, output) => {
    if ('write' in input) return input.write;
    return output === UNKNOWN || output === state ? state : undefined;
  },
  hash: (state) => state,
  equal: (a, b) => a === b,
};

test('on small random register histories the checker agrees with brute force too', (t) => {
  const random = seededRandom(77);
  const tally = { ok: 0, illegal: 0 };
  for (let round = 0; round < 5_000; round++) {
    const history: Operation<RegisterInput, number>[] = Array.from({ length: 1 + random.int(7) }, (_, clientId) => {
      const call = random.int(10);
      const isWrite = random.chance(0.5);
      const unknown = isWrite && random.chance(0.3);
      return {
        clientId, input: isWrite ? { write: random.int(3) } : { read: true }, call,
        output: unknown ? UNKNOWN : isWrite ? 0 : random.int(3), ret: unknown ? Infinity : call + random.int(6),
      };
    });
    const expected = bruteForce(register, history);
    const result = checkLinearizability(register, history);
    assert.equal(result.result, expected ? 'ok' : 'illegal', `round ${round}: ${JSON.stringify(history)}`);
    tally[expected ? 'ok' : 'illegal']++;
  }
  t.diagnostic(`verdicts: ${JSON.stringify(tally)}`);
  assert.ok(tally.ok > 500 && tally.illegal > 500, `both verdicts occur: ${JSON.stringify(tally)}`);
});

test('a 2,000-operation history over 20 keys from 8 clients is decided ok within the default budget', (t) => {
  const { operations } = generateHistory(seededRandom(99), {
    operations: 2_000, keys: 20, clients: 8, unknownRate: 0.02, phantomRate: 0.02,
  });
  const started = performance.now();
  const result = checkLinearizability(kvModel, operations);
  t.diagnostic(`${result.operations} operations, ${result.partitions} partitions: ${result.result} in ` +
    `${result.steps} steps, ${Math.round(performance.now() - started)} ms`);
  assert.equal(result.result, 'ok', result.explanation);
  assert.equal(result.partitions, 20);
});

test('the recorder keeps answers, drops certain failures and makes maybe-applied writes unknown', async () => {
  let clock = 0;
  const recorder = historyRecorder({ now: () => clock++ });
  const put1 = recorder.begin(1, { kind: 'put', key: K, value: 'a' });
  put1.succeed({ ok: true, version: 1 });
  recorder.begin(2, { kind: 'put', key: K, value: 'b' }).fail(new KvError('NOT_MASTER', 'no', NOT_APPLIED));
  const maybe = new KvError('TIMEOUT', 'maybe', { mayHaveBeenApplied: true });
  recorder.begin(3, { kind: 'put', key: K, value: 'c' }).fail(maybe);
  recorder.begin(4, { kind: 'get', key: K }).fail(new KvError('TIMEOUT', 'read timed out'));
  const cas = recorder.begin(5, { kind: 'put', key: K, value: 'd', expectedVersion: 0 });
  assert.deepEqual(cas.fail(new KvError('VERSION_CONFLICT', 'at 1', { ...NOT_APPLIED, version: 1 })), conflict(1));
  recorder.begin(6, { kind: 'delete', key: K }).fail(new Error('socket hang up'));
  recorder.begin(7, { kind: 'delete', key: K, expectedVersion: 9 });
  recorder.begin(8, { kind: 'get', key: K });
  const absent = recorder.begin(10, { kind: 'delete', key: 'y' });
  assert.deepEqual(absent.fail(new KvError('KEY_NOT_FOUND', 'not set', { ...NOT_APPLIED, version: 0 })), notFound(0));
  assert.throws(() => put1.succeed({ ok: true, version: 1 }), /twice/);

  const history = recorder.history();
  assert.deepEqual(history.map((operation) => [operation.clientId, operation.ret === Infinity, operation.output]), [
    [1, false, ok(1)], [3, true, UNKNOWN], [5, false, conflict(1)], [6, true, UNKNOWN], [7, true, UNKNOWN],
    [10, false, notFound(0)],
  ]);
  assert.deepEqual(recorder.counts(), {
    ok: 1, conflicts: 2, unknown: 2, failed: 2, pending: 2,
    codes: { NOT_MASTER: 1, TIMEOUT: 2, VERSION_CONFLICT: 1, UNEXPECTED: 1, KEY_NOT_FOUND: 1 },
  });
  assert.equal(checkLinearizability(kvModel, history).result, 'ok');
  // Timestamps come from the one clock given, in order: call before return.
  assert.deepEqual(recorder.entries().slice(0, 2).map((entry) => [entry.call, entry.ret]), [[0, 1], [2, 3]]);

  // perform() runs a client call: a refused conditional write resolves with its conflict.
  const fake = new FakeKv(seededRandom(1), 0);
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'put', key: 'z', value: 'v' }), ok(1));
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'delete', key: 'z', expectedVersion: 0 }), conflict(1));
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'get', key: 'z' }), { value: 'v', version: 1 });
  // A delete of a key that is not set answers deleted: false, recorded as KEY_NOT_FOUND.
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'delete', key: 'never' }), notFound(0));
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'delete', key: 'z' }), ok(2));
  assert.deepEqual(await recorder.perform(9, fake, { kind: 'delete', key: 'z', expectedVersion: 2 }), notFound(2));
});
