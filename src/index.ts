/**
 * multipaxos: Multi-Paxos for Node.js in the design of PhxPaxos.
 *
 * `PaxosNode` is the library as a service uses it: durable file storage, TCP between nodes, many
 * groups, natural batching. The protocol core and the runtime pieces it is built from are exported
 * too, for custom transports, stores and tests.
 */
export {
  PaxosNode, type NodeProposeOptions, type NodeProposeResult, type NodeMetrics, type GroupMetrics,
  type MembershipChangeOptions,
} from './node/paxos-node.js';
export {
  NODE_DEFAULTS, type PaxosNodeOptions, type MemberAddress, type NodeAddress, type ClosableTransport,
  type FollowerAddress,
} from './node/node-options.js';
export type { MasterInfo } from './runtime/master/master-state-machine.js';
export { DEFAULT_MASTER_OPTIONS, type MasterOptions } from './runtime/master/master-manager.js';
export type { Member, Membership } from './runtime/membership/membership-codec.js';
export type { InstanceValue } from './node/instance-values.js';
export { PaxosError, isRetryable, type PaxosErrorCode, type PaxosErrorOptions } from './errors.js';

export { GroupCore, type RestoredGroupState, type ProposeResult, type ExecutionReport, type GroupStatus } from './core/group-core.js';
export type { Ready, AcceptorRecord, OutboundMessage, ChosenValue, ProposalResult, ProposalOutcome, HaltReason } from './core/ready.js';
export type { PaxosMessage, MessageKind } from './core/messages.js';
export { MESSAGE_KINDS } from './core/messages.js';
export { type Ballot, NULL_BALLOT, compareBallots, ballotsEqual } from './core/ballot.js';
export { DEFAULT_TIMING, type ProtocolTiming, type GroupCoreConfig, type ChecksumFunction } from './core/config.js';
export type { AcceptorState } from './core/acceptor.js';

export type { LogStore, Transport, Clock, StateMachine, ExecuteInput, Logger } from './runtime/interfaces.js';
export { SILENT_LOGGER } from './runtime/interfaces.js';
export { GroupDriver, type GroupDriverOptions, type ProposeOptions } from './runtime/group-driver.js';
export type { ProposeSuccess } from './runtime/proposal-queue.js';
export { MAX_PROPOSE_ATTEMPTS } from './runtime/proposal-queue.js';
export { StateMachineRegistry } from './runtime/state-machine-registry.js';
export { restoreGroup } from './runtime/restore.js';
export {
  frameValue, unframeValue, isUserStateMachineId, NO_STATE_MACHINE_ID, SYSTEM_STATE_MACHINE_ID,
  MASTER_STATE_MACHINE_ID, BATCH_STATE_MACHINE_ID, type FramedValue,
} from './runtime/value-frame.js';

export { MemoryLogStore } from './io/memory-log-store.js';
export { FileLogStore, DEFAULT_SEGMENT_BYTES, type FileLogStoreOptions, type RecoveryReport } from './io/file-log-store.js';
export { NODE_FILE_SYSTEM, type FileSystem, type FileHandle } from './io/file-system.js';
export { type Random, SeededRandom } from './util/random.js';

export { TcpTransport } from './io/tcp-transport.js';
export { TRANSPORT_DEFAULTS, type TcpTransportOptions, type PeerAddress } from './io/tcp-transport-options.js';
export type { TransportStats, PeerStats } from './io/transport-stats.js';
export { WireError, type WireErrorReason } from './io/wire-error.js';
export { encodeMessage, decodeMessage, encodedSize, MESSAGE_KIND_CODES } from './io/message-codec.js';
export { PROTOCOL_VERSION, DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeMessageFrames } from './io/wire-frame.js';
export { encodeBatch, decodeBatch, BatchContexts } from './runtime/batch-value.js';
