/**
 * multipaxos/core: the building blocks PaxosNode is made of, for those who assemble their own
 * node, store or transport, and for tests: the pure protocol core (GroupCore and its Ready), the
 * driver and the state machine registry, the value, batch, proposal identity and wire codecs, the
 * file and memory log stores, the TCP transport, and a seeded Random. These follow the code, not
 * the versioned API of the package root: they may change in any release.
 */
export {
  GroupCore, type RestoredGroupState, type ProposeResult, type ExecutionReport, type GroupStatus,
} from './core/group-core.js';
export type {
  Ready, AcceptorRecord, OutboundMessage, ChosenValue, ProposalResult, ProposalOutcome, HaltReason,
} from './core/ready.js';
export { MESSAGE_KINDS, type PaxosMessage, type MessageKind } from './core/messages.js';
export { type Ballot, NULL_BALLOT, compareBallots, ballotsEqual } from './core/ballot.js';
export { DEFAULT_TIMING, type ProtocolTiming, type GroupCoreConfig, type ChecksumFunction } from './core/config.js';
export type { AcceptorState } from './core/acceptor.js';
export {
  PROPOSAL_ENVELOPE_ID, PROPOSAL_HEADER_BYTES, wrapProposal, proposalBody, proposalIdentityOf, isProposal,
  formatProposalIdentity, randomIncarnation, type ProposalIdentity, type Incarnation,
} from './core/proposal-identity.js';

export { GroupDriver, type GroupDriverOptions, type ProposeOptions } from './runtime/group-driver.js';
export { MAX_PROPOSE_ATTEMPTS, type ProposeSuccess } from './runtime/proposal-queue.js';
export { StateMachineRegistry } from './runtime/state-machine-registry.js';
export { restoreGroup } from './runtime/restore.js';
export {
  frameValue, unframeValue, isUserStateMachineId, NO_STATE_MACHINE_ID, SYSTEM_STATE_MACHINE_ID,
  MASTER_STATE_MACHINE_ID, BATCH_STATE_MACHINE_ID, type FramedValue,
} from './runtime/value-frame.js';
export { encodeBatch, decodeBatch, BatchContexts } from './runtime/batch-value.js';

export { MemoryLogStore } from './io/memory-log-store.js';
export {
  FileLogStore, DEFAULT_SEGMENT_BYTES, type FileLogStoreOptions, type RecoveryReport,
} from './io/file-log-store.js';
export { NODE_FILE_SYSTEM, type FileSystem, type FileHandle } from './io/file-system.js';
export { TcpTransport } from './io/tcp-transport.js';
export { TRANSPORT_DEFAULTS, type TcpTransportOptions } from './io/tcp-transport-options.js';
export type { TransportStats, PeerStats } from './io/transport-stats.js';
export { WireError, type WireErrorReason } from './io/wire-error.js';
export { encodeMessage, decodeMessage, encodedSize, MESSAGE_KIND_CODES } from './io/message-codec.js';
export { PROTOCOL_VERSION, DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeMessageFrames } from './io/wire-frame.js';
export { type Random, SeededRandom } from './util/random.js';
