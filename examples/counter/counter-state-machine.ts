/**
 * The smallest state machine with state: a counter per group that every chosen 'increment' adds one
 * to, and whose result is the new count. It is the example of the README, of the simulation kit
 * (examples/counter/simulate.ts), and of the lost write two equal proposals once caused: each
 * successful propose(group, 'increment') must add exactly one.
 */
import type { ExecuteInput, StateMachine } from '../../src/index.js';

export class CounterStateMachine implements StateMachine {
  readonly id = 1;
  private readonly counts = new Map<number, number>();

  execute({ groupIndex, value }: ExecuteInput): number {
    const command = Buffer.from(value).toString('utf8');
    if (command !== 'increment') throw new Error(`unknown counter command "${command}"`);
    const count = this.count(groupIndex) + 1;
    this.counts.set(groupIndex, count);
    return count;
  }

  count(groupIndex: number): number {
    return this.counts.get(groupIndex) ?? 0;
  }
}
