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
  /** Remove every record of the group, keeping system and master variables (checkpoint install). */
  clear(groupIndex: number): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: turn the store's own syncing off or on from the next write (PhxPaxos SetLogSync;
   * `PaxosNode.setLogSync` calls it). A store that syncs only when `put` asks may leave it out.
   */
  setSync?(enabled: boolean): void;
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
   * value is replayed at start-up).
   */
  checkpointInstanceId?(groupIndex: number): number;
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
