/**
 * TEST ONLY. Deliberate bugs for the simulator's canaries, handed to the core, driver and master
 * managers a PaxosNode builds. They ride on the options object under a symbol that no package
 * entry point exports, so an application cannot set them; they are not a documented option.
 */
import type { CoreFaults } from '../core/config.js';
import type { DriverFaults } from '../runtime/group-driver.js';
import type { PaxosNodeOptions } from './node-options.js';

export const NODE_TEST_FAULTS: unique symbol = Symbol('multipaxos.nodeTestFaults');

export interface NodeTestFaults {
  readonly core?: CoreFaults;
  readonly driver?: DriverFaults;
  /** The master trusts its whole lease, ignoring the drift bound. */
  readonly masterIgnoresDrift?: boolean;
}

/** PaxosNode options carrying canary faults (the simulator's only). */
export type OptionsWithTestFaults = PaxosNodeOptions & { readonly [NODE_TEST_FAULTS]?: NodeTestFaults };

export function testFaultsOf(options: PaxosNodeOptions): NodeTestFaults {
  return (options as OptionsWithTestFaults)[NODE_TEST_FAULTS] ?? {};
}
