/**
 * multipaxos: Multi-Paxos for Node.js in the design of PhxPaxos.
 *
 * The versioned API: `PaxosNode` (durable file storage, TCP between nodes, many groups, natural
 * batching, master election, membership, followers), its options and results, `PaxosError`, and the
 * seams an embedder may implement (StateMachine, LogStore, Transport, Clock, TimerHost, Random,
 * Logger). The building blocks PaxosNode is made of (the protocol core, the driver, the codecs, the
 * stores and the TCP transport) are in `multipaxos/core`; the simulator and test kit in
 * `multipaxos/testing`; the replicated KV service in `multipaxos/kv`.
 */
export {
  PaxosNode, type NodeProposeOptions, type NodeProposeResult, type NodeMetrics, type GroupMetrics,
  type MembershipChangeOptions,
} from './node/paxos-node.js';
export {
  NODE_DEFAULTS, type PaxosNodeOptions, type MemberAddress, type NodeAddress, type ClosableTransport,
  type FollowerAddress, type GroupHalt,
} from './node/node-options.js';
export type { ApplicationChannel } from './node/node-transport.js';
export type { TlsFileOptions } from './security/tls-files.js';
export type { MasterInfo } from './runtime/master/master-state-machine.js';
export { DEFAULT_MASTER_OPTIONS, type MasterOptions } from './runtime/master/master-manager.js';
export type { Member, Membership } from './runtime/membership/membership-codec.js';
export type { InstanceValue } from './node/instance-values.js';
export type { GroupStatus } from './core/group-core.js';
export { DEFAULT_TIMING, type ProtocolTiming } from './core/config.js';
export { PaxosError, isRetryable, type PaxosErrorCode, type PaxosErrorOptions } from './errors.js';

// The seams, and the types they carry.
export type {
  LogStore, Transport, PeerAddress, Clock, TimerHost, StateMachine, ExecuteInput, Logger,
  StateMachineSnapshot, ReceivedSnapshot,
} from './runtime/interfaces.js';
export { SILENT_LOGGER } from './runtime/interfaces.js';

// Exactly-once commands through client sessions, for any state machine.
export {
  withSessions, encodeSessionFrame, decodeSessionFrame, SessionStateMachine, SessionFrameError, type SessionFrame,
  type SessionOutcome,
} from './runtime/with-sessions.js';
export {
  SessionTable, DEFAULT_MAX_SESSIONS, MAX_SESSION_TTL_MS, type SessionCheck, type SessionRecord, type SessionTableState,
} from './runtime/session-table.js';
export type { Random } from './util/random.js';
export type { AcceptorRecord, HaltReason } from './core/ready.js';
export type { PaxosMessage, MessageKind } from './core/messages.js';
export type { Ballot } from './core/ballot.js';
