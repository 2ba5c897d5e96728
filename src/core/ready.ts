/**
 * What the core asks its driver to do. A driver takes a Ready with `GroupCore.ready()`, handles it
 * in this order, then calls `advance()`:
 *   1. send the messages with `afterPersist: false` (a proposer's accept broadcast, learn streams);
 *   2. persist `records` (fsync when `mustSync`), all of them before anything below;
 *   3. send the messages with `afterPersist: true` (every acceptor promise and accept, every learn
 *      ack, a prepare whose ballot the local acceptor just promised): they reveal state that must
 *      survive a crash (a rejection reveals nothing that needs to, and leaves in step 1). The rule
 *      is decided in one place, `waitsForPersist` (persist-order.ts);
 *   4. answer `reads` with `onLogRead`, in order; the reads may stop once the values read reach
 *      `readBytesLimit` bytes (at least one is read unless the limit is 0), and those not read
 *      are handed back with `onLogReadsDeferred`, before the others are answered;
 *   5. execute `execute`, then each of `executeAfter`, in order, on the state machines, reporting each
 *      with `onExecuted`; the first that fails (or a halt) ends the run, the core retries it;
 *   6. hand `results` to the callers.
 */
import type { Ballot } from './ballot.js';
import type { PaxosMessage } from './messages.js';

/** The acceptor's durable state for one instance (PhxPaxos AcceptorStateData). */
export interface AcceptorRecord {
  readonly instanceId: number;
  readonly promised: Ballot;
  /** The null ballot when nothing was accepted in this instance. */
  readonly accepted: Ballot;
  readonly value: Uint8Array;
  /** Checksum chain including this instance's accepted value (0: unknown). */
  readonly checksum: number;
}

export interface OutboundMessage {
  readonly to: number;
  readonly message: PaxosMessage;
  /** True when the message may only leave after this Ready's records are durable (`waitsForPersist`). */
  readonly afterPersist: boolean;
}

/** A chosen value to execute, in instance order, exactly once. */
export interface ChosenValue {
  readonly instanceId: number;
  readonly ballot: Ballot;
  readonly value: Uint8Array;
  /** Checksum chain including this value (0: unknown). */
  readonly checksum: number;
  /** The local proposal this value belongs to, when it is this node's own. */
  readonly proposalToken: number | null;
}

export type ProposalOutcome =
  /** The value was chosen at `instanceId` and executed here; `result` is the state machine's. */
  | { readonly kind: 'chosen'; readonly instanceId: number; readonly result: unknown }
  /** Another value won the instance this proposal was bound to; this value was not chosen there. */
  | { readonly kind: 'conflict'; readonly instanceId: number }
  /** No outcome in time. `mayBeChosen` is false only when the value was never sent to anyone. */
  | { readonly kind: 'timeout'; readonly mayBeChosen: boolean }
  /** Chosen at `instanceId`, but the state machine failed; execution is retried, never skipped. */
  | { readonly kind: 'executeFailed'; readonly instanceId: number; readonly error: unknown }
  /** The group stopped (divergence or a storage failure) before an outcome was known. */
  | { readonly kind: 'halted'; readonly mayBeChosen: boolean; readonly reason: HaltReason };

export interface ProposalResult {
  readonly token: number;
  readonly outcome: ProposalOutcome;
}

export interface HaltReason {
  readonly code: 'DIVERGED' | 'GROUP_HALTED' | 'STORAGE_UNAVAILABLE';
  readonly message: string;
}

export interface Ready {
  readonly records: readonly AcceptorRecord[];
  readonly mustSync: boolean;
  readonly messages: readonly OutboundMessage[];
  readonly reads: readonly number[];
  /**
   * How many bytes of values `reads` may bring (what a teacher's budget has left: see teacher.ts):
   * a driver reads in order until the values reach it, at least one unless it is 0, and defers the
   * rest. Infinity: no limit.
   */
  readonly readBytesLimit: number;
  readonly execute: ChosenValue | null;
  /**
   * Values chosen at the instances right after `execute` (or after the one executing, when
   * `execute` is null), durable once `records` are: a catch-up executes a run of them in one Ready.
   */
  readonly executeAfter: readonly ChosenValue[];
  readonly results: readonly ProposalResult[];
  /** Set once, in the Ready that first reports the halt. */
  readonly halted: HaltReason | null;
}
