import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Ballot } from '../../src/core/ballot.js';
import { AgreementChecker, ExecutionChecker, Violations } from '../../src/testing/sim/checkers.js';
import { MasterLeaseChecker } from '../../src/testing/sim/master-lease-checker.js';
import { frameValue } from '../../src/runtime/value-frame.js';
import { encodeBatch } from '../../src/runtime/batch-value.js';
import { utf8 } from '../../src/util/bytes.js';

const b = (proposalId: number, nodeId: number): Ballot => ({ proposalId, nodeId });

function choose(agreement: AgreementChecker, instanceId: number, ballot: Ballot, value: Uint8Array,
  acceptors: number[]): void {
  agreement.onSend(0, { kind: 'accept', from: ballot.nodeId, instanceId, ballot, value, lastChecksum: 0,
    previousBallot: b(0, 0) });
  for (const from of acceptors) agreement.onSend(0, { kind: 'acceptReply', from, instanceId, ballot, rejectedBy: 0 });
}

test('agreement: a second value chosen for an instance is a violation', () => {
  const violations = new Violations();
  const agreement = new AgreementChecker([1, 2, 3], violations);
  const first = frameValue(1, utf8('a'));
  const second = frameValue(1, utf8('b'));
  agreement.noteProposed(first);
  agreement.noteProposed(second);
  choose(agreement, 0, b(1, 1), first, [1, 2]);
  assert.equal(violations.any, false);
  choose(agreement, 0, b(2, 2), first, [2, 3]);
  assert.equal(violations.any, false, 'the same value again is fine');
  choose(agreement, 0, b(3, 3), second, [1, 3]);
  assert.match(violations.list.join('\n'), /two different values chosen/);
});

test('agreement: a value nobody proposed, one ballot with two values, and a broken promise are violations', () => {
  const violations = new Violations();
  const agreement = new AgreementChecker([1, 2, 3], violations);
  choose(agreement, 0, b(1, 1), frameValue(1, utf8('never proposed')), [1, 2]);
  assert.match(violations.list[0] ?? '', /never proposed/);
  agreement.onSend(0, { kind: 'accept', from: 1, instanceId: 1, ballot: b(1, 1), value: utf8('x'), lastChecksum: 0,
    previousBallot: b(0, 0) });
  agreement.onSend(0, { kind: 'accept', from: 1, instanceId: 1, ballot: b(1, 1), value: utf8('y'), lastChecksum: 0,
    previousBallot: b(0, 0) });
  assert.match(violations.list[1] ?? '', /carried two values/);
  const reply = (instanceId: number, ballot: Ballot) => ({ kind: 'prepareReply' as const, from: 2, instanceId, ballot,
    rejectedBy: 0, acceptedBallot: b(0, 0), acceptedValue: null });
  agreement.onSend(0, reply(5, b(4, 1)));
  agreement.onSend(0, reply(6, b(3, 3)));
  assert.match(violations.list[2] ?? '', /promised ballot 3\.3 at instance 6 after granting 4\.1 at instance 5/);
});

test('execution: order, the chosen value, and skipped instances only where the no-op was chosen', () => {
  const violations = new Violations();
  const agreement = new AgreementChecker([1, 2, 3], violations);
  const executions = new ExecutionChecker(agreement, violations);
  const values = [frameValue(1, utf8('a')), new Uint8Array(0), frameValue(2, utf8('c')), frameValue(1, utf8('d'))];
  for (const value of values) agreement.noteProposed(value);
  values.forEach((value, instanceId) => choose(agreement, instanceId, b(1, 1), value, [1, 2]));
  assert.equal(agreement.noopsChosen, 1);
  const life = { node: 2, life: 1, groupIndex: 0 };
  executions.onLifeStart(2, 0);
  executions.onExecute(life, 0, values[0] as Uint8Array);
  executions.onExecute(life, 2, values[2] as Uint8Array);
  assert.equal(violations.any, false, 'instance 1 held the no-op');
  executions.onExecute(life, 2, values[2] as Uint8Array);
  assert.match(violations.list[0] ?? '', /executed instance 2 again/);
  const other = { node: 3, life: 1, groupIndex: 0 };
  executions.onLifeStart(3, 0);
  executions.onExecute(other, 0, values[0] as Uint8Array);
  executions.onExecute(other, 3, values[3] as Uint8Array);
  assert.match(violations.list[1] ?? '', /executed instance 3, expected 2/);
  const third = { node: 1, life: 4, groupIndex: 0 };
  executions.onExecute(third, 0, frameValue(1, utf8('z')));
  assert.match(violations.list[2] ?? '', /not the chosen one/);
});

test('execution of a batch: every entry once, in order, and all of them before the next instance', () => {
  const violations = new Violations();
  const agreement = new AgreementChecker([1, 2, 3], violations);
  const executions = new ExecutionChecker(agreement, violations);
  const entries = ['a', 'b', 'c'].map((text) => frameValue(1, utf8(text)));
  for (const entry of entries) agreement.noteProposed(entry);
  const next = frameValue(2, utf8('next'));
  agreement.noteProposed(next);
  choose(agreement, 0, b(1, 1), encodeBatch(entries), [1, 2]);
  choose(agreement, 1, b(1, 1), next, [1, 2]);
  assert.equal(violations.any, false, 'a batch of proposed values is a valid chosen value');

  const good = { node: 1, life: 1, groupIndex: 0 };
  executions.onLifeStart(1, 0);
  for (const entry of entries) executions.onExecute(good, 0, entry);
  executions.onExecute(good, 1, next);
  assert.equal(violations.any, false);
  assert.deepEqual(executions.executedBy(1, 0, 0, 2), entries[2]);

  const repeats = { node: 2, life: 1, groupIndex: 0 };
  executions.onLifeStart(2, 0);
  executions.onExecute(repeats, 0, entries[0] as Uint8Array);
  executions.onExecute(repeats, 0, entries[0] as Uint8Array);
  assert.match(violations.list[0] ?? '', /instance 0 \(entry 1\) a value that is not the chosen one/);

  const unfinished = { node: 3, life: 1, groupIndex: 0 };
  executions.onLifeStart(3, 0);
  executions.onExecute(unfinished, 0, entries[0] as Uint8Array);
  executions.onExecute(unfinished, 1, next);
  assert.match(violations.list[1] ?? '', /before finishing the batch of instance 0 \(1 of 3 entries\)/);

  const forged = frameValue(1, utf8('never proposed'));
  choose(agreement, 2, b(1, 1), encodeBatch([next, forged]), [1, 2]);
  assert.match(violations.list[2] ?? '', /chosen value was never proposed/);
  assert.match(violations.list[3] ?? '', /instance 2: a value was chosen 2 times but proposed 1 times/);
});

test('master leases: two nodes holding one group\'s lease at the same true time is a violation', () => {
  const violations = new Violations();
  const leases = new MasterLeaseChecker(violations);
  leases.hold(0, 1, 0, 1_000);
  leases.hold(0, 1, 500, 1_500);
  leases.hold(1, 2, 200, 900);
  assert.equal(violations.any, false, 'renewals by one node, and other groups, never conflict');
  leases.hold(0, 2, 1_500, 2_500);
  assert.equal(violations.any, false, 'touching intervals do not overlap');
  leases.release(0, 2, 1_800);
  leases.hold(0, 3, 1_800, 2_000);
  assert.equal(violations.any, false, 'a drop ends the belief at once');
  leases.releaseAll(3, 1_900);
  leases.hold(0, 1, 1_950, 2_600);
  assert.equal(violations.any, false, 'a crash ends every belief of the node');
  leases.hold(0, 2, 2_500, 3_000);
  assert.match(violations.list[0] ?? '', /group 0: nodes 1 and 2 both believed they held the master lease at true time 2500/);
  assert.equal(leases.masterChanges, 6);
});

test('master leases: a holder\'s lease must end no later than any other node takes the same version\'s to end', () => {
  const violations = new Violations();
  const leases = new MasterLeaseChecker(violations);
  leases.hold(0, 1, 100, 1_000, 7);
  leases.view(0, 2, 1, 7, 1_100);
  leases.view(0, 3, 1, 7, 1_000);
  leases.view(0, 1, 1, 7, 500);
  assert.equal(violations.any, false, 'others count as long or longer; the holder\'s own view is not a view');
  leases.view(0, 3, 1, 8, 900);
  leases.hold(0, 1, 950, 1_200, 8);
  assert.match(violations.list[0] ?? '', /group 0: node 1 believed its master lease \(version 8\) lasted until true time 1200\.000 ms, but node 3 took it to end at 900\.000 ms/);
  leases.view(0, 2, 1, 8, 800);
  assert.equal(violations.list.length, 1, 'said once per version');
});

test('membership: votes count over the members of each instance, and every node must see the same change', () => {
  const violations = new Violations();
  const agreement = new AgreementChecker([1, 2, 3], violations);
  const value = frameValue(1, utf8('v'));
  agreement.noteProposed(value);
  choose(agreement, 5, b(1, 1), value, [1, 4]);
  assert.equal(agreement.chosenValue(0, 5), undefined, 'node 4 is no member: one vote of three is no majority');
  agreement.noteMembership(0, 5, [1, 4]);
  agreement.noteMembership(0, 5, [4, 1]);
  assert.equal(violations.any, false, 'the same members, in any order');
  assert.deepEqual([...agreement.membersAt(0, 5)], [1, 2, 3], 'a change at 5 applies from 6 on');
  assert.deepEqual([...agreement.membersAt(0, 6)], [1, 4]);
  choose(agreement, 6, b(1, 1), value, [4]);
  assert.equal(agreement.chosenValue(0, 6), undefined, 'one of two is no majority');
  choose(agreement, 6, b(1, 1), value, [1]);
  assert.ok(agreement.chosenValue(0, 6) !== undefined, 'two of two is');
  agreement.noteMembership(0, 5, [1, 2]);
  assert.match(violations.list[0] ?? '', /membership version 5 is \{1,4\} on one node and \{1,2\} on another/);
  assert.equal(agreement.membershipChanges, 1);
});
