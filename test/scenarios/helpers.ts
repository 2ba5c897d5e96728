/** Shared steps and checks for the scripted scenarios. Not a test file itself. */
import assert from 'node:assert/strict';
import { formatBallot, type Ballot } from '../../src/core/ballot.js';
import type { ProposalOutcome } from '../../src/core/ready.js';
import type { CoreHarness, MessageFilter } from '../../src/testing/core-harness.js';
import { proposalBody } from '../../src/core/proposal-identity.js';
import { fromUtf8 } from '../../src/util/bytes.js';
import type { SeededRandom } from '../../src/util/random.js';

/**
 * Deliver everything, dropping whatever travels to or from an `isolated` node (a partition), until
 * nothing is in flight. Time does not move.
 */
export function settleWithout(harness: CoreHarness, isolated: readonly number[], maxRounds = 10_000): void {
  for (let round = 0; round < maxRounds; round++) {
    harness.process();
    for (const id of isolated) {
      harness.drop({ to: id });
      harness.drop({ from: id });
    }
    if (harness.network.length === 0) return;
    harness.deliver({}, harness.network.length);
  }
  throw new Error(`no quiescence after ${maxRounds} rounds`);
}

/** Propose on `id` and deliver until quiet, with `isolated` nodes cut off; returns the token. */
export function proposeAndSettle(harness: CoreHarness, id: number, value: string,
  isolated: readonly number[] = []): number {
  const token = harness.propose(id, value);
  settleWithout(harness, isolated);
  return token;
}

export function outcomeOf(harness: CoreHarness, id: number, token: number): ProposalOutcome | undefined {
  return harness.resultFor(id, token)?.outcome;
}

export function assertChosen(harness: CoreHarness, id: number, token: number, instanceId: number): void {
  const outcome = outcomeOf(harness, id, token);
  assert.deepEqual(outcome?.kind === 'chosen' ? { kind: outcome.kind, instanceId: outcome.instanceId } : outcome,
    { kind: 'chosen', instanceId }, `proposal ${token} on n${id}\n${harness.trace.join('\n')}`);
}

export function assertExecuted(harness: CoreHarness, ids: readonly number[], expected: readonly string[]): void {
  for (const id of ids) {
    assert.deepEqual(harness.executedValues(id), expected, `n${id} executed\n${harness.trace.join('\n')}`);
  }
}

export function ballotsOf(messages: readonly { readonly ballot: Ballot }[]): string[] {
  return messages.map((message) => formatBallot(message.ballot));
}

/** The values messages carry, as their proposers gave them (without the identity envelope). */
export function valuesOf(messages: readonly { readonly value: Uint8Array }[]): string[] {
  return messages.map((message) => fromUtf8(proposalBody(message.value)));
}

/** The value each durable record of node `id` holds, by instance, from 0 up to `count` - 1. */
export function durableValues(harness: CoreHarness, id: number, count: number): (string | undefined)[] {
  const durable = harness.node(id).durable;
  return Array.from({ length: count }, (_, instanceId) => {
    const record = durable.get(instanceId);
    return record === undefined ? undefined : fromUtf8(proposalBody(record.value));
  });
}

/**
 * A hostile but fair network: deliver one randomly picked in-flight message at a time, now and then
 * let a millisecond pass, until `done` holds.
 */
export function deliverRandomlyUntil(harness: CoreHarness, random: SeededRandom, done: () => boolean,
  maxSteps = 200_000): void {
  for (let step = 0; step < maxSteps; step++) {
    if (done()) return;
    if (harness.network.length === 0 || random.chance(0.05)) {
      harness.tick(1);
      continue;
    }
    const entry = random.pick(harness.network);
    harness.deliver({ where: (message) => message === entry.message, to: entry.to }, 1);
  }
  throw new Error(`not done after ${maxSteps} steps\n${harness.trace.slice(-200).join('\n')}`);
}

/** Propose on `id` and let time run, delivering everything, until the proposal has an outcome. */
export function proposeAndWait(harness: CoreHarness, id: number, value: string, maxMs = 120_000): ProposalOutcome {
  const token = harness.propose(id, value);
  harness.runUntil(() => outcomeOf(harness, id, token) !== undefined, maxMs);
  return outcomeOf(harness, id, token) as ProposalOutcome;
}

/** Propose until the value is chosen, retrying after each conflict as a client would. */
export function proposeUntilChosen(harness: CoreHarness, id: number, value: string, attempts = 5): number {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const outcome = proposeAndWait(harness, id, value);
    if (outcome.kind === 'chosen') return outcome.instanceId;
    assert.equal(outcome.kind, 'conflict', `unexpected outcome ${JSON.stringify(outcome)}`);
  }
  throw new Error(`"${value}" not chosen after ${attempts} attempts`);
}

/** Deliver everything until nothing is in flight, dropping every message that matches `lost`. */
export function settleDropping(harness: CoreHarness, lost: MessageFilter, maxRounds = 10_000): void {
  for (let round = 0; round < maxRounds; round++) {
    harness.process();
    harness.drop(lost);
    if (harness.network.length === 0) return;
    harness.deliver({}, harness.network.length);
  }
  throw new Error(`no quiescence after ${maxRounds} rounds`);
}
