// Regressions for problems found by a review of the core; each test failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { GroupCore } from '../../src/core/group-core.js';
import { wrapProposal } from '../../src/core/proposal-identity.js';
import type { PaxosMessage } from '../../src/core/messages.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { GroupDriver } from '../../src/runtime/group-driver.js';
import { SILENT_LOGGER, type ExecuteInput, type StateMachine } from '../../src/runtime/interfaces.js';
import { restoreGroup } from '../../src/runtime/restore.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { frameValue } from '../../src/runtime/value-frame.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { bytesEqual, utf8 } from '../../src/util/bytes.js';
import { makeConfig } from '../core/fixtures.js';

/** Append 4 bytes to `prefix` so that crc32(result, seed) === target (CRC-32 is affine: solve over GF(2)). */
function forge(prefix: Uint8Array, target: number, seed: number): Uint8Array {
  const withX = (x: number) => {
    const out = new Uint8Array(prefix.length + 4);
    out.set(prefix);
    new DataView(out.buffer).setUint32(prefix.length, x >>> 0, true);
    return out;
  };
  const c = crc32(withX(0), seed);
  const cols = Array.from({ length: 32 }, (_, k) => (crc32(withX(2 ** k), seed) ^ c) >>> 0);
  // rows: equation bit r: sum_k cols[k].bit(r) * x_k = (target ^ c).bit(r)
  const rhs = (target ^ c) >>> 0;
  const rows: { mask: number; b: number }[] = [];
  for (let r = 0; r < 32; r++) {
    let mask = 0;
    for (let k = 0; k < 32; k++) if ((cols[k]! >>> r) & 1) mask |= 1 << k;
    rows.push({ mask: mask >>> 0, b: (rhs >>> r) & 1 });
  }
  const pivots: number[] = [];
  let row = 0;
  for (let k = 0; k < 32; k++) {
    const p = rows.findIndex((e, i) => i >= row && ((e.mask >>> k) & 1) === 1);
    if (p < 0) continue;
    [rows[row], rows[p]] = [rows[p]!, rows[row]!];
    for (let i = 0; i < 32; i++) {
      if (i !== row && ((rows[i]!.mask >>> k) & 1)) {
        rows[i] = { mask: (rows[i]!.mask ^ rows[row]!.mask) >>> 0, b: rows[i]!.b ^ rows[row]!.b };
      }
    }
    pivots[row] = k;
    row++;
  }
  let x = 0;
  for (let i = 0; i < row; i++) if (rows[i]!.b) x |= 1 << pivots[i]!;
  const out = withX(x);
  assert.equal(crc32(out, seed), target >>> 0);
  return out;
}


test('a value crafted to collide in CRC-32 with the chosen one is not learned through the next accept', () => {
  const h = new CoreHarness({ nodes: 5 });
  // The chain runs over the agreed bytes, each value in its proposal's envelope: n5's first
  // proposal carries V, n1's first carries W, forged so that the two envelopes collide.
  const V = utf8('V');
  const firstOf = (id: number) => ({ nodeId: id, incarnation: h.node(id).incarnation, startPromise: 0, sequence: 1 });
  const agreedV = wrapProposal(firstOf(5), V);
  const W = forge(utf8('W'), crc32(agreedV, 0), crc32(wrapProposal(firstOf(1), new Uint8Array(0)), 0));
  assert.ok(!bytesEqual(V, W));
  assert.equal(crc32(wrapProposal(firstOf(1), W), 0), crc32(agreedV, 0), 'the forged value collides');
  // n1 holds promises for 1.1 and gets W accepted by itself and n2 only.
  h.node(1).core.propose(W, 999, 60_000);
  h.process(1);
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.deliver({ kind: 'accept', from: 1, to: 2 });
  h.drop({ kind: 'accept', from: 1 });
  h.drop({ kind: 'acceptReply' });
  // n5 gets V chosen by n3, n4, n5 under 1.5; n1 also accepts V; n2 hears nothing of it.
  h.propose(5, 'V');
  h.drop({ kind: 'prepare', from: 5, to: 1 });
  h.drop({ kind: 'prepare', from: 5, to: 2 });
  h.deliver({ kind: 'prepare', from: 5 });
  h.deliver({ kind: 'prepareReply', to: 5 });
  h.drop({ kind: 'accept', from: 5, to: 2 });
  h.deliver({ kind: 'accept', from: 5 });
  h.deliver({ kind: 'acceptReply', to: 5 });
  h.drop({ kind: 'chosen', to: 2 });
  h.deliver({ kind: 'chosen' });
  // n1 proposes X in instance 1 with 1.1, skipping prepare; its checksum chain equals crc(W).
  h.propose(1, 'X');
  h.deliver({ to: 2 });
  assert.deepEqual(h.node(2).executed, [], 'n2 must not learn W from an accept that names V\'s ballot');
  h.runUntil(() => [1, 2, 3, 4, 5].every((id) => h.node(id).executed.length >= 2));
  for (const id of [1, 2, 3, 4, 5]) {
    assert.ok(bytesEqual(h.node(id).executed[0]?.value ?? new Uint8Array(), agreedV), `n${id} executed V at 0`);
    assert.equal(h.node(id).halted, null);
  }
});

test('a chosen value is learned by its proposer even when its own acceptor refused and every notification is lost', () => {
  const h = new CoreHarness({ nodes: 5 });
  // n5 prepares 1.5; only n1 hears it and promises; then n5 dies.
  h.propose(5, 'Q');
  h.deliver({ kind: 'prepare', from: 5, to: 1 });
  h.drop({ kind: 'prepare', from: 5 });
  h.crash(5);
  h.drop({ to: 5 });
  // n1 proposes P with 1.1 (< 1.5): its own acceptor refuses, n2..n4 accept: P is chosen.
  const p = h.propose(1, 'P', Infinity);
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.deliver({ kind: 'accept', from: 1 });
  h.deliver({ kind: 'acceptReply', to: 1 });
  h.drop({ kind: 'chosen' });
  assert.equal(h.resultFor(1, p)?.outcome.kind, 'chosen');
  h.runUntil(() => [1, 2, 3, 4].every((id) => h.executedValues(id).length === 1), 30_000);
  for (const id of [1, 2, 3, 4]) assert.deepEqual(h.executedValues(id), ['P']);
});

test("a non-member's learnValue, chosen and sendNowInstanceId are ignored", () => {
  const h = new CoreHarness({ nodes: 3 });
  const evil = utf8('evil');
  h.inject(1, { kind: 'learnValue', from: 9, instanceId: 0, ballot: { proposalId: 100, nodeId: 9 }, value: evil,
    checksum: crc32(evil, 0), needAck: false });
  h.inject(1, { kind: 'sendNowInstanceId', from: 9, instanceId: 0, nowInstanceId: 50, minChosenInstanceId: 0 });
  h.deliver();
  assert.deepEqual(h.executedValues(1), []);
  assert.equal(h.pending({ kind: 'confirmAskForLearn' }).length, 0);
});

/** A state machine whose effects are durable as soon as it executes (checkpoint = last instance applied). */
function durableStateMachine(id: number, applied: number[]): StateMachine {
  return {
    id,
    execute: (input: ExecuteInput) => {
      applied.push(input.instanceId);
      return input.instanceId;
    },
    checkpointInstanceId: () => (applied.length === 0 ? -1 : applied[applied.length - 1] as number),
  };
}

async function startLife(store: MemoryLogStore, stateMachines: StateMachine[]): Promise<GroupDriver> {
  const registry = new StateMachineRegistry(0, stateMachines);
  const restored = await restoreGroup(store, 0, registry);
  const core = new GroupCore(makeConfig({ nodeId: 1, members: [1] }), restored, 0);
  const driver: GroupDriver = new GroupDriver({
    groupIndex: 0, core, store, registry, clock: { now: () => 0 },
    send: (_group: number, _to: number, message: PaxosMessage) => queueMicrotask(() => driver.step(message)),
    logger: SILENT_LOGGER, syncWrites: true,
    queueLimits: { maxCount: 8, maxBytes: 1 << 20 },
    batchLimits: { maxCount: 1, maxBytes: 1 << 20 }, onTimersChanged: () => {},
    onFatal: (error) => {
      throw error;
    },
  });
  return driver;
}

test('a restart never re-executes an instance a state machine\'s checkpoint already covers', async () => {
  const store = new MemoryLogStore();
  const first: number[] = [];
  const second: number[] = [];
  const life1 = await startLife(store, [durableStateMachine(1, first), durableStateMachine(2, second)]);
  assert.equal((await life1.propose(frameValue(1, utf8('a')), { timeoutMs: 10_000 })).instanceId, 0);
  assert.equal((await life1.propose(frameValue(2, utf8('b')), { timeoutMs: 10_000 })).instanceId, 1);
  life1.stop();
  // Checkpoints are 0 and 1; the log ends at 1, so start-up resumes there and decides it again.
  const life2 = await startLife(store, [durableStateMachine(1, first), durableStateMachine(2, second)]);
  assert.equal(life2.nowInstanceId, 1);
  const next = await life2.propose(frameValue(1, utf8('c')), { timeoutMs: 10_000 });
  assert.equal(next.instanceId, 2);
  assert.deepEqual(second, [1], 'state machine 2 applied instance 1 exactly once');
  assert.deepEqual(first, [0, 2]);
  life2.stop();
});

test('a value chosen just before its proposer crashed is finished by the stall timer, not left undecided', () => {
  const h = new CoreHarness({ nodes: 3 });
  const token = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.deliver({ kind: 'accept', from: 1 });
  // n2 and n3 accepted A; n1 crashes before it hears the replies, so nobody learns A.
  h.crash(1);
  h.drop({ kind: 'acceptReply' });
  assert.equal(h.resultFor(1, token), undefined);
  h.runUntil(() => [2, 3].every((id) => h.executedValues(id).length === 1), 10_000);
  assert.deepEqual(h.executedValues(2), ['A']);
  assert.deepEqual(h.executedValues(3), ['A']);
  h.restart(1);
  h.runUntil(() => h.executedValues(1).length === 1, 10_000);
  assert.deepEqual(h.executedValues(1), ['A']);
});

test('the stall timer proposes a no-op when the answering majority accepted nothing', () => {
  const h = new CoreHarness({ nodes: 5, timing: { stallMinMs: 100, stallMaxMs: 100 } });
  h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // Only n2 accepts A, then n1 dies: A was never chosen.
  h.deliver({ kind: 'accept', from: 1, to: 2 });
  h.crash(1);
  h.drop({ from: 1 });
  h.tick(100);
  // n2 finishes the instance. n3, n4 and n5, who accepted nothing, answer before n2's own acceptor:
  // no value to adopt, so the no-op (empty value) is chosen and A is not.
  h.deliver({ kind: 'prepare', from: 2 });
  for (const id of [3, 4, 5]) h.deliver({ kind: 'prepareReply', from: id, to: 2 });
  h.stabilize();
  for (const id of [2, 3, 4, 5]) assert.deepEqual(h.executedValues(id), [''], `n${id} executed the no-op`);
});
