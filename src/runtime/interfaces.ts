/**
 * The seams between the runtime and the world. Each has a production implementation (src/io) and
 * a deterministic one (src/testing); users may supply their own.
 */
import type { PaxosMessage } from '../core/messages.js';
import type { AcceptorRecord } from '../core/ready.js';

/**
 * Durable storage of a node's Paxos log, per group (PhxPaxos LogStorage). A `put` with
 * `sync: true` resolves only once every record is on stable storage. Records of one group are
 * applied in call order; the newest record of an instance replaces older ones.
 */
export interface LogStore {
  put(groupIndex: number, records: readonly AcceptorRecord[], options: { readonly sync: boolean }): Promise<void>;
  get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined>;
  /**
   * Optional: several records at once, as `get` gives each (a store may read neighbours together),
   * in the order asked. With `maxBytes`, the store may read only a first part of them, at least one,
   * once what it read reaches about that many bytes: the answer is then shorter than the request.
   */
  getMany?(
    groupIndex: number, instanceIds: readonly number[], options?: { readonly maxBytes?: number },
  ): Promise<(AcceptorRecord | undefined)[]>;
  /** The highest instance with a record, or undefined when the group's log is empty. */
  maxInstanceId(groupIndex: number): Promise<number | undefined>;
  /** Delete every record below `instanceId` (log cleaning behind a checkpoint). */
  deleteBelow(groupIndex: number, instanceId: number): Promise<void>;
  /** The lowest instance whose record is still kept (0 for a log never cleaned). */
  minChosenInstanceId(groupIndex: number): Promise<number>;
  setMinChosenInstanceId(groupIndex: number, instanceId: number): Promise<void>;
  systemVariables(groupIndex: number): Promise<Uint8Array | undefined>;
  setSystemVariables(groupIndex: number, value: Uint8Array): Promise<void>;
  masterVariables(groupIndex: number): Promise<Uint8Array | undefined>;
  setMasterVariables(groupIndex: number, value: Uint8Array): Promise<void>;
  /** Remove every record of the group, keeping system and master variables. */
  clear(groupIndex: number): Promise<void>;
  /**
   * The checkpoint install under way when the node last stopped (undefined: none). A node installing
   * a received checkpoint at instance C records C here, durably, with the checkpoint's system and
   * master variables, before any state machine starts to install; start-up then either completes
   * the install (every state machine reports C or later: the variables are written and the log
   * below C + 1 goes) or abandons it (the old state, variables included, stands, and the log is
   * intact).
   */
  pendingCheckpoint(groupIndex: number): Promise<PendingCheckpoint | undefined>;
  setPendingCheckpoint(groupIndex: number, pending: PendingCheckpoint | undefined): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: turn the store's own syncing off or on from the next write (PhxPaxos SetLogSync;
   * `PaxosNode.setLogSync` calls it). A store that syncs only when `put` asks may leave it out.
   */
  setSync?(enabled: boolean): void;
  /**
   * Optional: bytes the log occupies on disk (every group together, pre-allocated space included),
   * for metrics. A store that cannot tell leaves it out.
   */
  diskBytes?(): number;
  /**
   * Optional: the writes the store has made to its files since it opened, every group's records
   * together (one group-committed write may carry several groups' records), for metrics.
   */
  flushes?(): number;
}

/** A checkpoint install under way (LogStore.pendingCheckpoint). */
export interface PendingCheckpoint {
  readonly instanceId: number;
  /** The checkpoint's system and master variables, for start-up to write once the install took. */
  readonly systemVariables?: Uint8Array | undefined;
  readonly masterVariables?: Uint8Array | undefined;
}

/** Where a node can be reached. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Carries messages between nodes. Sending never throws and never blocks: Paxos tolerates loss
 * between nodes. Messages a node sends to itself (its own acceptor's replies) must be delivered.
 */
export interface Transport {
  send(groupIndex: number, to: number, message: PaxosMessage): void;
  /** Register the single receiver of inbound messages. */
  onMessage(handler: (groupIndex: number, message: PaxosMessage) => void): void;
  /**
   * Optional: where a member can be reached. `PaxosNode` calls it for every member but itself each
   * time a membership change executes (and at start-up for the restored membership), so a member
   * added at run time becomes reachable. A transport that finds its peers another way may leave it out.
   */
  setPeerAddress?(nodeId: number, address: PeerAddress): void;
  /**
   * Optional: the group's identity (gid) is known, at start-up or when it is first created. A
   * transport that carries it can refuse messages for the group from a cluster with another gid.
   */
  setGroupIdentity?(groupIndex: number, gid: number): void;
}

/** A monotonic clock in milliseconds. Only the runtime reads it; the core receives its readings. */
export interface Clock {
  now(): number;
}

/**
 * Runs callbacks at moments of the node's clock: setTimeout in production, the simulator's event
 * queue under simulation (where the node's clock is converted to true time). A node keeps at most
 * one timer armed, so the host needs no bookkeeping of its own.
 */
export interface TimerHost {
  /** Run `run` once, when the clock reads `atMs` or later. The returned function cancels it. */
  setTimer(atMs: number, run: () => void): () => void;
}

export interface ExecuteInput {
  readonly groupIndex: number;
  readonly instanceId: number;
  readonly value: Uint8Array;
  /** What the proposer passed along with its own value; undefined on every other node and in replay. */
  readonly context: unknown;
}

/**
 * A replicated state machine (PhxPaxos StateMachine). `execute` runs every chosen value addressed to
 * this state machine, in instance order, exactly once per process life: a value that throws (or
 * rejects) is retried, never skipped, and nothing after it runs until it succeeds.
 */
export interface StateMachine {
  /** Routes values to this state machine; 1 ≤ id < 100000000 (higher ids are reserved). */
  readonly id: number;
  execute(input: ExecuteInput): unknown;
  /**
   * The highest instance whose effects this state machine keeps durably (-1: none, so every
   * value is replayed at start-up). Start-up replays only the instances above it, and log cleaning
   * keeps every instance above it (less the hold). Without it, nothing is ever cleaned.
   */
  checkpointInstanceId?(groupIndex: number): number;
  /**
   * A snapshot of the durable state that `checkpointInstanceId` reports, for a peer that is too far
   * behind to learn from the log (PhxPaxos GetCheckpointState). It must stay readable and unchanged
   * while it is sent, with execution going on; `close` is called when the transfer ends either way.
   * Undefined: no snapshot yet. A group can send and install checkpoints only when every one of its
   * state machines implements this and `installSnapshot`.
   */
  openSnapshot?(groupIndex: number): Promise<StateMachineSnapshot | undefined>;
  /**
   * Replace the group's state with a snapshot received from a peer (every byte already verified).
   * Atomically and durably: once it resolves, `checkpointInstanceId` reports `snapshot.instanceId`;
   * a crash at any moment leaves either the old state or the new one. Nothing of the group executes
   * while it runs. A rejection abandons the install; the old state must then still stand.
   */
  installSnapshot?(groupIndex: number, snapshot: ReceivedSnapshot): Promise<void>;
}

/** One state machine's durable state, covering every instance up to `instanceId`. */
export interface StateMachineSnapshot {
  readonly instanceId: number;
  /** The bytes, read once, in order. */
  readonly chunks: AsyncIterable<Uint8Array>;
  close?(): void | Promise<void>;
}

/** A snapshot as it arrived from a peer: the bytes its `openSnapshot` produced, verified. */
export interface ReceivedSnapshot {
  readonly instanceId: number;
  readonly chunks: AsyncIterable<Uint8Array>;
  /** The total size in bytes. */
  readonly bytes: number;
}

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const SILENT_LOGGER: Logger = Object.freeze({
  info: () => {},
  warn: () => {},
  error: () => {},
});
