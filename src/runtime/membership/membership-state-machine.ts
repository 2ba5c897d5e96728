/**
 * The membership of one group as a state machine on the log (PhxPaxos SystemVSM). A change names
 * the group identity and the membership version it was made against; it applies only if both
 * still hold (optimistic concurrency: of two concurrent changes, the second fails whole, never
 * half-applied). Applied, it takes effect from the next instance on every node, since every node
 * executes the same changes in the same order. The first change creates the group identity (gid).
 *
 * Like the master state machine, it keeps its state in the store (system variables), written
 * durably as each change executes, and restores from there rather than from a replay.
 */
import { NOT_CHOSEN, PaxosError } from '../../errors.js';
import type { ExecuteInput, LogStore, StateMachine } from '../interfaces.js';
import { SYSTEM_STATE_MACHINE_ID } from '../value-frame.js';
import { decodeMembership, encodeMembership, type Member, type Membership } from './membership-codec.js';

/** What executing a membership change returned to its proposer. */
export type MembershipOutcome =
  | { readonly applied: true; readonly version: number }
  | { readonly applied: false; readonly reason: 'version' | 'gid' | 'malformed'; readonly current: Membership };

export interface MembershipStateMachineOptions {
  readonly groupIndex: number;
  readonly store: LogStore;
  /** The configured members, used until the log changes them. */
  readonly configured: readonly Member[];
  /** A change was applied: the core must count majorities over these from the next instance. */
  readonly onApplied?: (membership: Membership) => void;
}

export class MembershipStateMachine implements StateMachine {
  readonly id = SYSTEM_STATE_MACHINE_ID;
  private readonly options: MembershipStateMachineOptions;
  private state: Membership;

  private constructor(options: MembershipStateMachineOptions, state: Membership) {
    this.options = options;
    this.state = state;
  }

  /**
   * Restore from the store. On first start the configured members are written down: until the
   * first change they are the membership, and every node must use the same ones, so a restart
   * configured with other members is refused rather than silently counting other majorities.
   */
  static async load(options: MembershipStateMachineOptions): Promise<MembershipStateMachine> {
    const stored = await options.store.systemVariables(options.groupIndex);
    if (stored === undefined) {
      const initial: Membership = { gid: 0, version: -1, members: [...options.configured], nonce: 0 };
      await options.store.setSystemVariables(options.groupIndex, encodeMembership(initial));
      return new MembershipStateMachine(options, initial);
    }
    const state = decodeMembership(stored);
    const ids = (members: readonly Member[]): string => members.map((member) => member.id).sort((a, b) => a - b)
      .join(',');
    if (state.version === -1 && ids(state.members) !== ids(options.configured)) {
      throw new PaxosError('BAD_OPTIONS', `group ${options.groupIndex}: members {${ids(options.configured)}} ` +
        `differ from {${ids(state.members)}}, which this node first started with; until the first membership ` +
        'change every node must be configured with the same members (change them through the log instead)', NOT_CHOSEN);
    }
    return new MembershipStateMachine(options, state);
  }

  get membership(): Membership {
    return this.state;
  }

  async execute(input: ExecuteInput): Promise<MembershipOutcome> {
    let change: Membership;
    try {
      change = decodeMembership(input.value);
    } catch {
      // Every node refuses the same bytes the same way; throwing would retry it forever and wedge the group.
      return { applied: false, reason: 'malformed', current: this.state };
    }
    if (this.state.gid !== 0 && change.gid !== this.state.gid) {
      return { applied: false, reason: 'gid', current: this.state };
    }
    if (change.version !== this.state.version) return { applied: false, reason: 'version', current: this.state };
    const gid = this.state.gid === 0 ? change.gid : this.state.gid;
    const next: Membership = { gid, version: input.instanceId, members: change.members, nonce: 0 };
    await this.options.store.setSystemVariables(this.options.groupIndex, encodeMembership(next));
    this.state = next;
    this.options.onApplied?.(next);
    return { applied: true, version: next.version };
  }
}
