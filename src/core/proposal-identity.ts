/**
 * Every value this node proposes carries an identity no other proposal can share, and "my value
 * was chosen" is decided by that identity alone, never by comparing bytes. Two nodes (or two
 * callers of one node) may propose byte-identical values at the same time; only one of them is
 * chosen in an instance, and only its proposer may report success for that execution. PhxPaxos
 * compares bytes here, so a second caller with equal bytes is told "chosen" for an execution that
 * was not its own: a lost write.
 *
 * The identity is (node id, incarnation, start promise, sequence):
 *   - node ids are unique in a cluster and never reused;
 *   - the incarnation is 64 random bits drawn once per process life (from the OS in production,
 *     from the injected Random under simulation);
 *   - the start promise is the proposal id the group's acceptor had promised when this life began.
 *     Before a life's first accept leaves, its prepare's promise is durable (a fresh proposer never
 *     skips phase 1), so any later life starts above it: two lives whose proposals could both be
 *     chosen never share a start promise, even if their random bits repeat (a test that reuses a
 *     seed across restarts). With `sync` off that durability is gone and only the random bits
 *     remain (two lives collide with probability 2^-64);
 *   - the sequence counts this life's proposals, retries included (a retry is a new proposal).
 *
 * It travels inside the agreed bytes, as an envelope addressed to a reserved state machine id:
 *   u32 PROPOSAL_ENVELOPE_ID | u32 node id | u32 incarnation high | u32 incarnation low |
 *   u64 start promise | u64 sequence | body                          (little-endian)
 * Readers of agreed values strip it (`proposalBody`); a value without one (the no-op that finishes
 * a stalled instance, or a log written before identities existed) belongs to no live proposal.
 */
import { readUint32LE } from '../util/bytes.js';
import type { Random } from '../util/random.js';

/** Reserved in the state machine id space (ids from 100000000 up belong to the library). */
export const PROPOSAL_ENVELOPE_ID = 100_000_003;
export const PROPOSAL_HEADER_BYTES = 32;

/** 64 random bits that tell one process life of a node from every other. */
export interface Incarnation {
  readonly high: number;
  readonly low: number;
}

export interface ProposalIdentity {
  readonly nodeId: number;
  readonly incarnation: Incarnation;
  /** The proposal id the acceptor had promised when this life began (a safe integer). */
  readonly startPromise: number;
  /** This life's count of proposals: a safe integer, at least 1. */
  readonly sequence: number;
}

const TWO_32 = 0x1_0000_0000;

/** An incarnation drawn from `random` (a seeded stream under simulation and in tests). */
export function randomIncarnation(random: Random): Incarnation {
  return { high: random.int(0, TWO_32) >>> 0, low: random.int(0, TWO_32) >>> 0 };
}

/** Wrap `body` in the envelope carrying `identity`. */
export function wrapProposal(identity: ProposalIdentity, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(PROPOSAL_HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, PROPOSAL_ENVELOPE_ID, true);
  view.setUint32(4, identity.nodeId, true);
  view.setUint32(8, identity.incarnation.high, true);
  view.setUint32(12, identity.incarnation.low, true);
  setUint64(view, 16, identity.startPromise);
  setUint64(view, 24, identity.sequence);
  out.set(body, PROPOSAL_HEADER_BYTES);
  return out;
}

export function hasProposalEnvelope(value: Uint8Array): boolean {
  return value.length >= PROPOSAL_HEADER_BYTES && readUint32LE(value, 0) === PROPOSAL_ENVELOPE_ID;
}

/** The value as its proposer handed it over: the envelope removed, if it has one. */
export function proposalBody(value: Uint8Array): Uint8Array {
  return hasProposalEnvelope(value) ? value.subarray(PROPOSAL_HEADER_BYTES) : value;
}

/** The identity a value carries, or undefined when it has no envelope. */
export function proposalIdentityOf(value: Uint8Array): ProposalIdentity | undefined {
  if (!hasProposalEnvelope(value)) return undefined;
  const view = new DataView(value.buffer, value.byteOffset, PROPOSAL_HEADER_BYTES);
  return {
    nodeId: view.getUint32(4, true),
    incarnation: { high: view.getUint32(8, true), low: view.getUint32(12, true) },
    startPromise: getUint64(view, 16),
    sequence: getUint64(view, 24),
  };
}

/** Whether `value` is the proposal with `identity`: the only test of "my value was chosen". */
export function isProposal(value: Uint8Array, identity: ProposalIdentity): boolean {
  if (!hasProposalEnvelope(value)) return false;
  const view = new DataView(value.buffer, value.byteOffset, PROPOSAL_HEADER_BYTES);
  return view.getUint32(4, true) === identity.nodeId &&
    view.getUint32(8, true) === identity.incarnation.high &&
    view.getUint32(12, true) === identity.incarnation.low &&
    getUint64(view, 16) === identity.startPromise &&
    getUint64(view, 24) === identity.sequence;
}

/** Safe integers as u64 little-endian (two u32 halves: no BigInt on the hot path). */
function setUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

function getUint64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * TWO_32;
}

export function formatProposalIdentity(identity: ProposalIdentity): string {
  const hex = (word: number): string => word.toString(16).padStart(8, '0');
  return `n${identity.nodeId}/${hex(identity.incarnation.high)}${hex(identity.incarnation.low)}/` +
    `${identity.startPromise}/${identity.sequence}`;
}
