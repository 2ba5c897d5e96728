/**
 * Scripted scenarios about integrity: divergence detected through the checksum chain (the group
 * halts, pending proposals learn why), execution failures retried without skipping, and the
 * checksum chain being the same on every node however it learned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PaxosMessage } from '../../src/core/messages.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { fullCrc32 } from '../../src/testing/crc32.js';
import { utf8 } from '../../src/util/bytes.js';
import {
  assertChosen, assertExecuted, outcomeOf, proposeAndSettle, proposeUntilChosen, settleWithout,
} from './helpers.js';

/** The checksum chain of `values` as every node must compute it (full CRC-32 seeded by the previous). */
function chainOf(values: readonly (string | Uint8Array)[]): number[] {
  const chain: number[] = [];
  let previous = 0;
  for (const value of values) {
    previous = fullCrc32(typeof value === 'string' ? utf8(value) : value, previous);
    chain.push(previous);
  }
  return chain;
}

/** A cluster that chose v0 and v1, with a proposal pending on n3 for instance 2. */
function clusterWithPendingProposal(): { h: CoreHarness; token: number } {
  const h = new CoreHarness({ nodes: 3 });
  proposeAndSettle(h, 1, 'v0');
  proposeAndSettle(h, 1, 'v1');
  const token = h.propose(3, 'pending');
  assert.equal(h.inFlight('prepare', { from: 3, instanceId: 2 }).length, 2);
  return { h, token };
}

function assertHaltedForDivergence(h: CoreHarness, id: number, token: number): void {
  const node = h.node(id);
  assert.equal(node.halted?.code, 'DIVERGED', h.trace.join('\n'));
  assert.match(node.halted.message, /diverged/);
  const outcome = outcomeOf(h, id, token);
  assert.equal(outcome?.kind, 'halted');
  assert.equal(outcome.kind === 'halted' && outcome.reason.code, 'DIVERGED');
  assert.equal(outcome.kind === 'halted' && outcome.mayBeChosen, true, 'its prepare had left');
  assert.equal(node.core.status().halted?.code, 'DIVERGED');
  // A halted group takes no more input and has no timers.
  assert.equal(node.core.propose(utf8('later'), 999, 1000), 'halted');
  assert.equal(node.core.nextTimerAt(), undefined);
  const writes = node.writes.length;
  const sent = h.sent.length;
  h.inject(id, { kind: 'prepare', from: 1, instanceId: 2, ballot: { proposalId: 50, nodeId: 1 } });
  h.deliver({ to: id });
  h.tick(10_000);
  assert.equal(node.writes.length, writes, 'nothing written after the halt');
  assert.deepEqual(h.sent.slice(sent).filter((entry) => entry.message.from === id), [], 'nothing sent after the halt');
}

test('divergence through a learnValue with a wrong checksum: the group halts with DIVERGED and the pending ' +
  "proposal is reported 'halted'", () => {
  const { h, token } = clusterWithPendingProposal();
  const [, c1] = chainOf(['v0', 'v1']);
  // A teacher whose history differs: its chain through instance 2 is not ours plus this value.
  const forged: PaxosMessage = {
    kind: 'learnValue', from: 1, instanceId: 2, ballot: { proposalId: 1, nodeId: 1 }, value: utf8('other'),
    checksum: fullCrc32(utf8('other'), (c1 ?? 0) ^ 0x5a5a), needAck: true,
  };
  h.node(3).core.step(forged);
  h.process(3);
  assertHaltedForDivergence(h, 3, token);
  assertExecuted(h, [3], ['v0', 'v1']);
  assert.equal(h.node(3).durable.get(2)?.value.length ?? 0, 0, 'the divergent value was not written');

  // The other nodes go on without n3.
  h.drop({ to: 3 });
  assert.equal(proposeUntilChosen(h, 1, 'v2'), 2);
  settleWithout(h, [3]);
  assertExecuted(h, [1, 2], ['v0', 'v1', 'v2']);
});

test('divergence through an accept or a chosen notification whose chain differs halts the group', () => {
  for (const kind of ['accept', 'chosen'] as const) {
    const { h, token } = clusterWithPendingProposal();
    const [, c1] = chainOf(['v0', 'v1']);
    const wrongChain = ((c1 ?? 0) + 1) >>> 0;
    const ballot = { proposalId: 7, nodeId: 1 };
    const message: PaxosMessage = kind === 'accept'
      ? { kind, from: 1, instanceId: 2, ballot, value: utf8('x'), lastChecksum: wrongChain, previousBallot: ballot }
      : { kind, from: 1, instanceId: 2, ballot, lastChecksum: wrongChain };
    h.inject(3, message);
    h.deliver({ to: 3, kind });
    assertHaltedForDivergence(h, 3, token);
    const record = h.node(3).durable.get(2);
    assert.deepEqual([record?.promised, record?.accepted.proposalId, record?.value.length],
      [{ proposalId: 1, nodeId: 3 }, 0, 0], `${kind}: only n3's own promise is on disk, nothing was accepted`);
  }
});

test('a failed execution is retried with backoff, never skipped; later instances wait for it', () => {
  const h = new CoreHarness({ nodes: 3 });
  const n2 = h.node(2);
  n2.failExecutions = true;
  assertChosen(h, 1, proposeAndSettle(h, 1, 'A'), 0);
  assertExecuted(h, [1, 3], ['A']);
  assert.deepEqual(h.executedValues(2), []);
  assert.equal(n2.core.status().nowInstanceId, 0);

  // Instance 1 is decided meanwhile; n2 keeps its messages for later.
  assertChosen(h, 1, proposeAndSettle(h, 1, 'B'), 1);
  assert.equal(n2.core.status().nowInstanceId, 0);
  assert.ok(n2.core.status().futureMessages > 0);

  const failures = (): number[] => h.trace.filter((line) => line.includes('execute n2 #0 failed'))
    .map((line) => Number.parseInt(line, 10));
  for (let elapsed = 0; elapsed < 2000; elapsed += 5) h.tick(5);
  const times = failures();
  assert.ok(times.length >= 6, `retried ${times.length} times`);
  const gaps = times.slice(1).map((at, index) => at - (times[index] ?? 0));
  for (let index = 1; index < gaps.length; index++) {
    assert.ok((gaps[index] ?? 0) >= (gaps[index - 1] ?? 0), `backoff grows: ${gaps.join(', ')}`);
  }
  assert.ok(gaps.every((gap) => gap <= 1005), `capped at 1 s: ${gaps.join(', ')}`);
  assert.deepEqual(h.executedValues(2), [], 'nothing skipped ahead of the failing value');

  n2.failExecutions = false;
  h.tick(1000);
  h.stabilize();
  assertExecuted(h, [1, 2, 3], ['A', 'B']);
  assert.equal(n2.core.status().nowInstanceId, 2);
});

test("the proposer's own execution fails: it reports executeFailed, stays on the instance, retries, and runs " +
  'phase 1 again for its next proposal', () => {
  const h = new CoreHarness({ nodes: 3 });
  assertChosen(h, 1, proposeAndSettle(h, 1, 'v0'), 0);
  const n1 = h.node(1);
  n1.failExecutions = true;
  const a = proposeAndSettle(h, 1, 'A');
  assert.equal(h.sentOfKind('prepare').length, 2, 'instance 1 skipped phase 1');
  assert.deepEqual(outcomeOf(h, 1, a), {
    kind: 'executeFailed', instanceId: 1, error: new Error('execution failed on purpose'),
  });
  assert.equal(n1.core.status().nowInstanceId, 1);
  assertExecuted(h, [2, 3], ['v0', 'A']);

  // A proposal made meanwhile waits until the failed value is executed.
  const b = h.propose(1, 'B');
  assert.equal(h.pending({ from: 1 }).length, 0);
  n1.failExecutions = false;
  h.tick(10);
  assertExecuted(h, [1], ['v0', 'A']);
  // Skip-prepare was cancelled by the failure: instance 2 starts with a prepare.
  assert.equal(h.inFlight('prepare', { from: 1, instanceId: 2 }).length, 2);
  h.stabilize();
  assertChosen(h, 1, b, 2);
  assertExecuted(h, [1, 2, 3], ['v0', 'A', 'B']);
  assert.equal(h.node(1).results.filter((result) => result.token === a).length, 1, 'one result for A');
});

test('the checksum chain is identical on every node, however each one learned', () => {
  const h = new CoreHarness({ nodes: 3 });
  const values: string[] = [];
  const choose = (id: number, value: string, isolated: readonly number[] = []): void => {
    proposeAndSettle(h, id, value, isolated);
    values.push(value);
  };
  // Instances 0-5 with n3 cut off (it will learn them from a teacher's stream).
  for (let index = 0; index < 6; index++) choose(1, `s${index}`, [3]);
  // n2 crashes and restarts (it learns through "now+1" and notifications afterwards).
  h.crash(2);
  h.restart(2);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === values.length));
  for (let index = 6; index < 10; index++) {
    assert.equal(proposeUntilChosen(h, 1 + (index % 3), `m${index}`), index);
    values.push(`m${index}`);
  }
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === values.length));
  assertExecuted(h, [1, 2, 3], values);

  // The chain runs over the agreed bytes (each value in its proposal's identity envelope), as node 1
  // holds them; assertExecuted above showed that their bodies are the proposed values.
  const agreed = values.map((_, instanceId) => h.node(1).durable.get(instanceId)?.value ?? new Uint8Array(0));
  const expected = chainOf(agreed);
  for (const id of [1, 2, 3]) {
    const chain = values.map((_, instanceId) => h.node(id).durable.get(instanceId)?.checksum);
    assert.deepEqual(chain, expected, `n${id}'s durable checksums`);
    assert.deepEqual(h.node(id).executed.map((chosen) => chosen.checksum), expected, `n${id}'s executed checksums`);
  }
  assert.ok(h.sentOfKind('learnValue', { to: 3 }).length >= 6, 'n3 learned from a stream');
});
