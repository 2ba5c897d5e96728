/** Shared builders for the unit tests of the protocol core. Not a test file itself. */
import type { Ballot } from '../../src/core/ballot.js';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import { DEFAULT_TIMING, type CoreFaults, type GroupCoreConfig, type ProtocolTiming } from '../../src/core/config.js';
import { GroupContext } from '../../src/core/group-context.js';
import { GroupCore, type RestoredGroupState } from '../../src/core/group-core.js';
import type {
  AcceptMessage, AcceptReplyMessage, PaxosMessage, PrepareMessage, PrepareReplyMessage,
} from '../../src/core/messages.js';
import type { OutboundMessage, Ready } from '../../src/core/ready.js';
import type { CoreHarness } from '../../src/testing/core-harness.js';
import { fullCrc32 } from '../../src/testing/crc32.js';
import { EMPTY_BYTES, fromUtf8, utf8 } from '../../src/util/bytes.js';
import { SeededRandom } from '../../src/util/random.js';

export interface ConfigOptions {
  readonly nodeId?: number;
  readonly members?: readonly number[];
  readonly followers?: readonly number[];
  readonly seed?: number;
  readonly timing?: Partial<ProtocolTiming>;
  readonly faults?: CoreFaults;
}

export function makeConfig(options: ConfigOptions = {}): GroupCoreConfig {
  return {
    groupIndex: 0,
    nodeId: options.nodeId ?? 1,
    members: options.members ?? [1, 2, 3],
    followers: options.followers,
    random: new SeededRandom(options.seed ?? 7),
    // One life per node and seed; a test of several lives gives each its own seed.
    incarnation: { high: options.nodeId ?? 1, low: options.seed ?? 7 },
    checksum: fullCrc32,
    timing: { ...DEFAULT_TIMING, ...options.timing },
    faults: options.faults,
  };
}

export interface ContextOptions extends ConfigOptions {
  readonly instanceId?: number;
  readonly lastChecksum?: number;
  readonly nowMs?: number;
}

export function makeContext(options: ContextOptions = {}): GroupContext {
  const context = new GroupContext(makeConfig(options), options.instanceId ?? 0, options.lastChecksum ?? 0);
  context.nowMs = options.nowMs ?? 0;
  return context;
}

export function ballot(proposalId: number, nodeId: number): Ballot {
  return { proposalId, nodeId };
}

export function emptyRestored(overrides: Partial<RestoredGroupState> = {}): RestoredGroupState {
  return {
    nowInstanceId: 0, lastChecksum: 0, minChosenInstanceId: 0,
    acceptor: { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 },
    ...overrides,
  };
}

export function makeCore(
  options: ConfigOptions = {}, restored: Partial<RestoredGroupState> = {}, nowMs = 0,
): GroupCore {
  return new GroupCore(makeConfig(options), emptyRestored(restored), nowMs);
}

/** Take the pending Ready (an empty one when there is nothing) and acknowledge it at once. */
export function drain(core: GroupCore): Ready {
  if (!core.hasReady()) return EMPTY_READY;
  const ready = core.ready();
  core.advance();
  return ready;
}

export const EMPTY_READY: Ready = Object.freeze({
  records: [], mustSync: false, messages: [], reads: [], readBytesLimit: Infinity, execute: null, executeAfter: [],
  results: [], halted: null,
});

export function prepareMsg(from: number, instanceId: number, b: Ballot): PrepareMessage {
  return { kind: 'prepare', from, instanceId, ballot: b };
}

export function acceptMsg(from: number, instanceId: number, b: Ballot, value: string | Uint8Array,
  lastChecksum = 0, previousBallot: Ballot = NULL_BALLOT): AcceptMessage {
  return { kind: 'accept', from, instanceId, ballot: b, value: typeof value === 'string' ? utf8(value) : value,
    lastChecksum, previousBallot };
}

export function promiseMsg(from: number, instanceId: number, b: Ballot, accepted: Ballot = NULL_BALLOT,
  acceptedValue: string | null = null): PrepareReplyMessage {
  return { kind: 'prepareReply', from, instanceId, ballot: b, rejectedBy: 0, acceptedBallot: accepted,
    acceptedValue: acceptedValue === null ? null : utf8(acceptedValue) };
}

export function prepareRejectMsg(from: number, instanceId: number, b: Ballot, rejectedBy: number): PrepareReplyMessage {
  return { kind: 'prepareReply', from, instanceId, ballot: b, rejectedBy, acceptedBallot: NULL_BALLOT,
    acceptedValue: null };
}

export function acceptOkMsg(from: number, instanceId: number, b: Ballot): AcceptReplyMessage {
  return { kind: 'acceptReply', from, instanceId, ballot: b, rejectedBy: 0 };
}

export function acceptRejectMsg(from: number, instanceId: number, b: Ballot, rejectedBy: number): AcceptReplyMessage {
  return { kind: 'acceptReply', from, instanceId, ballot: b, rejectedBy };
}

/** Outbound messages of one kind, narrowed to that kind. */
export type OutboundOfKind<K extends PaxosMessage['kind']> =
  OutboundMessage & { readonly message: Extract<PaxosMessage, { kind: K }> };

export function ofKind<K extends PaxosMessage['kind']>(
  messages: readonly OutboundMessage[], kind: K,
): OutboundOfKind<K>[] {
  return messages.filter((outbound): outbound is OutboundOfKind<K> => outbound.message.kind === kind);
}

export function text(bytes: Uint8Array | null | undefined): string | null {
  return bytes === null || bytes === undefined ? null : fromUtf8(bytes);
}

/** The checksum chain the core computes, for expected values in assertions. */
export function chain(previous: number, ...values: (string | Uint8Array)[]): number {
  let checksum = previous;
  for (const value of values) checksum = fullCrc32(typeof value === 'string' ? utf8(value) : value, checksum);
  return checksum;
}

/** Deliver everything except what goes to or comes from `isolated`, which is dropped. */
export function stabilizeWithout(harness: CoreHarness, isolated: number): void {
  for (let round = 0; round < 10_000; round++) {
    harness.process();
    harness.drop({ to: isolated });
    harness.drop({ from: isolated });
    if (harness.network.length === 0) return;
    harness.deliver({}, harness.network.length);
  }
  throw new Error('no quiescence');
}
