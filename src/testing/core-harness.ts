/**
 * A hand-driven cluster of GroupCores for scripted scenarios and unit tests: every message waits in
 * a visible queue until a test delivers or drops it, time moves only when a test ticks, and records
 * count as durable once the Ready that carries them is processed. Crash and restart rebuild a core
 * from its durable records alone.
 */
import type { Ballot } from '../core/ballot.js';
import { DEFAULT_TIMING, type CoreFaults, type ProtocolTiming } from '../core/config.js';
import { GroupCore, type RestoredGroupState } from '../core/group-core.js';
import type { MessageKind, PaxosMessage } from '../core/messages.js';
import { proposalBody, randomIncarnation, type Incarnation } from '../core/proposal-identity.js';
import type { AcceptorRecord, ChosenValue, HaltReason, ProposalResult } from '../core/ready.js';
import { NULL_BALLOT } from '../core/ballot.js';
import { EMPTY_BYTES, fromUtf8, utf8 } from '../util/bytes.js';
import { SeededRandom } from '../util/random.js';
import { answeredWithin } from '../runtime/read-budget.js';
import { fullCrc32 } from './crc32.js';

export interface InFlightMessage {
  readonly seq: number;
  readonly to: number;
  readonly message: PaxosMessage;
}

export interface MessageFilter {
  readonly from?: number;
  readonly to?: number;
  readonly kind?: MessageKind;
  readonly instanceId?: number;
  /** Any further condition on the message (e.g. its ballot). */
  readonly where?: (message: PaxosMessage) => boolean;
}

/** The message type of one kind, for typed access to kind-specific fields. */
export type MessageOfKind<K extends MessageKind> = Extract<PaxosMessage, { kind: K }>;

export interface HarnessNode {
  readonly id: number;
  core: GroupCore;
  /** This life's incarnation: with the node id and a count, it makes each proposal's identity. */
  incarnation: Incarnation;
  readonly durable: Map<number, AcceptorRecord>;
  /** Values executed in this life of the node, in order. */
  executed: ChosenValue[];
  readonly results: ProposalResult[];
  halted: HaltReason | null;
  crashed: boolean;
  /** When set, executions fail until cleared. */
  failExecutions: boolean;
  /** Records written, in order, across lives (for assertions about what was persisted). */
  readonly writes: AcceptorRecord[];
  /** Readies that carried records: each is one write (one fsync) in production. */
  writeBatches: number;
}

export interface CoreHarnessOptions {
  readonly nodes: number;
  readonly seed?: number;
  readonly timing?: Partial<ProtocolTiming>;
  readonly faults?: CoreFaults;
}

export class CoreHarness {
  readonly nodes = new Map<number, HarnessNode>();
  readonly network: InFlightMessage[] = [];
  /** Every message a core sent, in order, whatever became of it (injected messages are not here). */
  readonly sent: InFlightMessage[] = [];
  readonly trace: string[] = [];
  nowMs = 0;
  private seq = 0;
  private nextToken = 1;
  private readonly random: SeededRandom;
  private readonly timing: ProtocolTiming;
  private readonly members: number[];
  private readonly faults: CoreFaults | undefined;

  constructor(options: CoreHarnessOptions) {
    this.random = new SeededRandom(options.seed ?? 1);
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.faults = options.faults;
    this.members = Array.from({ length: options.nodes }, (_, index) => index + 1);
    for (const id of this.members) {
      const incarnation = randomIncarnation(this.random);
      const node: HarnessNode = {
        id, core: this.createCore(id, emptyState(), incarnation), incarnation, durable: new Map(), executed: [],
        results: [], halted: null, crashed: false, failExecutions: false, writes: [], writeBatches: 0,
      };
      this.nodes.set(id, node);
    }
  }

  node(id: number): HarnessNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new RangeError(`no node ${id}`);
    return node;
  }

  /** Propose a UTF-8 value on a node; returns the proposal token. */
  propose(id: number, value: string, timeoutMs = 60_000): number {
    const token = this.nextToken++;
    const result = this.node(id).core.propose(utf8(value), token, timeoutMs);
    this.log(`propose n${id} "${value}" -> ${result}`);
    this.process(id);
    return token;
  }

  /** Handle every Ready a node has (persist, queue messages, answer reads, execute). */
  process(id?: number): void {
    const ids = id === undefined ? this.members : [id];
    for (const nodeId of ids) {
      const node = this.node(nodeId);
      while (!node.crashed && node.core.hasReady()) this.handleReady(node);
    }
  }

  /** Messages currently in flight that match the filter, oldest first. */
  pending(filter: MessageFilter = {}): InFlightMessage[] {
    return this.network.filter((entry) => matches(entry, filter));
  }

  /** Deliver matching messages (all of them by default), in the order they were sent. */
  deliver(filter: MessageFilter = {}, limit = Infinity): number {
    let delivered = 0;
    for (const entry of this.pending(filter)) {
      if (delivered >= limit) break;
      delivered++;
      this.deliverEntry(entry);
    }
    return delivered;
  }

  /** Deliver matching messages newest first (a reordering network). */
  deliverInReverse(filter: MessageFilter = {}): number {
    const entries = this.pending(filter).reverse();
    for (const entry of entries) this.deliverEntry(entry);
    return entries.length;
  }

  /**
   * Hand matching messages to their nodes without handling the Readies that result: nothing is
   * persisted, sent or executed until the next `process`, `deliver` or `tick` of that node, so a
   * `crash` right after models a crash between receiving a message and the fsync.
   */
  stepOnly(filter: MessageFilter = {}, limit = Infinity): number {
    let stepped = 0;
    for (const entry of this.pending(filter)) {
      if (stepped >= limit) break;
      this.removeFromNetwork(entry.seq);
      stepped++;
      const node = this.node(entry.to);
      if (node.crashed) continue;
      this.log(`step (unprocessed) ${describe(entry.message)} -> n${entry.to}`);
      node.core.tick(this.nowMs);
      node.core.step(entry.message);
    }
    return stepped;
  }

  /** Put a hand-made message in flight to `to`, as if the network carried it. */
  inject(to: number, message: PaxosMessage): InFlightMessage {
    const entry = { seq: this.seq++, to, message };
    this.network.push(entry);
    this.log(`inject ${describe(message)} -> n${to}`);
    return entry;
  }

  /** Put a second copy of every matching in-flight message at the end of the queue. */
  duplicate(filter: MessageFilter = {}): number {
    const copies = this.pending(filter);
    for (const entry of copies) {
      this.network.push({ seq: this.seq++, to: entry.to, message: entry.message });
      this.log(`duplicate ${describe(entry.message)} -> n${entry.to}`);
    }
    return copies.length;
  }

  /** The in-flight messages of one kind that match the filter, typed, oldest first. */
  inFlight<K extends MessageKind>(kind: K, filter: Omit<MessageFilter, 'kind'> = {}): MessageOfKind<K>[] {
    return this.pending({ ...filter, kind }).map((entry) => entry.message as MessageOfKind<K>);
  }

  /** The messages of one kind the cores ever sent that match the filter, typed, oldest first. */
  sentOfKind<K extends MessageKind>(kind: K, filter: Omit<MessageFilter, 'kind'> = {}): MessageOfKind<K>[] {
    return this.sent.filter((entry) => matches(entry, { ...filter, kind }))
      .map((entry) => entry.message as MessageOfKind<K>);
  }

  drop(filter: MessageFilter = {}): number {
    const dropped = this.pending(filter);
    for (const entry of dropped) {
      this.removeFromNetwork(entry.seq);
      this.log(`drop ${describe(entry.message)} -> n${entry.to}`);
    }
    return dropped.length;
  }

  /** Deliver everything until nothing is in flight (bounded, so a livelock fails loudly). */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.process();
      if (this.network.length === 0) return;
      this.deliver({}, this.network.length);
    }
    throw new Error(`no quiescence after ${maxRounds} rounds`);
  }

  /** Advance the shared clock and fire due timers everywhere. */
  tick(ms: number): void {
    this.nowMs += ms;
    for (const node of this.nodes.values()) {
      if (node.crashed) continue;
      node.core.tick(this.nowMs);
      this.process(node.id);
    }
  }

  /** Move time forward in steps, delivering everything in between, until `predicate` holds. */
  runUntil(predicate: () => boolean, maxMs = 120_000, stepMs = 5): void {
    const end = this.nowMs + maxMs;
    while (!predicate()) {
      if (this.nowMs >= end) throw new Error(`condition not reached within ${maxMs} ms`);
      this.stabilize();
      if (predicate()) return;
      this.tick(stepMs);
    }
  }

  /** The node stops; unprocessed outputs and messages to it are lost. */
  crash(id: number): void {
    const node = this.node(id);
    node.crashed = true;
    for (const entry of this.pending({ to: id })) this.removeFromNetwork(entry.seq);
    this.log(`crash n${id}`);
  }

  /**
   * Crash in the middle of a Ready (see ready.ts): the messages that need no persistence leave,
   * then the node stops before its records are written; everything else in the Ready is lost.
   * Use after `stepOnly`, or after calling `node.core` directly, so that the Ready is still pending.
   */
  crashBeforePersist(id: number): void {
    const node = this.node(id);
    if (node.core.hasReady()) {
      const ready = node.core.ready();
      for (const outbound of ready.messages) {
        if (outbound.afterPersist) continue;
        const entry = { seq: this.seq++, to: outbound.to, message: outbound.message };
        this.network.push(entry);
        this.sent.push(entry);
      }
      this.log(`n${id} sent ${ready.messages.filter((outbound) => !outbound.afterPersist).length} messages, ` +
        `lost ${ready.records.length} unwritten records`);
    }
    this.crash(id);
  }

  /**
   * Start the node again from its durable records only, replaying chosen values. The new life
   * draws a fresh incarnation unless one is given (to model a random stream reused across lives).
   */
  restart(id: number, incarnation?: Incarnation): void {
    const node = this.node(id);
    const state = restoreFromRecords(node.durable);
    node.incarnation = incarnation ?? randomIncarnation(this.random);
    node.core = this.createCore(id, state, node.incarnation);
    node.crashed = false;
    node.halted = null;
    node.executed = [];
    for (let instanceId = 0; instanceId < state.nowInstanceId; instanceId++) {
      const record = node.durable.get(instanceId);
      if (record !== undefined) {
        node.executed.push({ instanceId, ballot: record.accepted, value: record.value, checksum: record.checksum,
          proposalToken: null });
      }
    }
    this.log(`restart n${id} at instance ${state.nowInstanceId}`);
  }

  /** Executed values of a node as strings. */
  executedValues(id: number): string[] {
    return this.node(id).executed.map((chosen) => fromUtf8(proposalBody(chosen.value)));
  }

  resultFor(id: number, token: number): ProposalResult | undefined {
    return this.node(id).results.find((result) => result.token === token);
  }

  private handleReady(node: HarnessNode): void {
    const ready = node.core.ready();
    if (ready.records.length > 0) node.writeBatches++;
    for (const record of ready.records) {
      node.durable.set(record.instanceId, record);
      node.writes.push(record);
    }
    for (const outbound of ready.messages) {
      const entry = { seq: this.seq++, to: outbound.to, message: outbound.message };
      this.network.push(entry);
      this.sent.push(entry);
    }
    if (ready.reads.length > 0) {
      // Within the Ready's byte limit, as GroupDriver answers them (runtime/read-budget.ts).
      const records = ready.reads.map((instanceId) => node.durable.get(instanceId));
      const answered = answeredWithin(records, ready.readBytesLimit);
      if (answered < ready.reads.length) node.core.onLogReadsDeferred(ready.reads.slice(answered));
      for (let index = 0; index < answered; index++) node.core.onLogRead(ready.reads[index] as number, records[index]);
    }
    // In order, stopping at the first failure (or a halt), as GroupDriver does.
    for (const chosen of ready.execute === null ? ready.executeAfter : [ready.execute, ...ready.executeAfter]) {
      if (node.core.isHalted) break;
      if (node.failExecutions) {
        this.log(`execute n${node.id} #${chosen.instanceId} failed on purpose`);
        node.core.onExecuted(chosen.instanceId, { ok: false, error: new Error('execution failed on purpose') });
        break;
      }
      node.executed.push(chosen);
      const body = fromUtf8(proposalBody(chosen.value));
      this.log(`execute n${node.id} #${chosen.instanceId} "${body}"`);
      node.core.onExecuted(chosen.instanceId, { ok: true, result: `result of ${body}` });
    }
    for (const result of ready.results) {
      node.results.push(result);
      this.log(`result n${node.id} token ${result.token}: ${result.outcome.kind}`);
    }
    if (ready.halted !== null) {
      node.halted = ready.halted;
      this.log(`halt n${node.id}: ${ready.halted.code}`);
    }
    node.core.advance();
  }

  private createCore(id: number, state: RestoredGroupState, incarnation: Incarnation): GroupCore {
    return new GroupCore({
      groupIndex: 0, nodeId: id, members: this.members, random: this.random.fork(), incarnation, checksum: fullCrc32,
      timing: this.timing, faults: this.faults,
    }, state, this.nowMs);
  }

  private deliverEntry(entry: InFlightMessage): void {
    this.removeFromNetwork(entry.seq);
    const node = this.node(entry.to);
    if (node.crashed) return;
    this.log(`deliver ${describe(entry.message)} -> n${entry.to}`);
    node.core.tick(this.nowMs);
    node.core.step(entry.message);
    this.process(entry.to);
  }

  private removeFromNetwork(seq: number): void {
    const index = this.network.findIndex((entry) => entry.seq === seq);
    if (index >= 0) this.network.splice(index, 1);
  }

  private log(line: string): void {
    this.trace.push(`${this.nowMs}ms ${line}`);
  }
}

function emptyState(): RestoredGroupState {
  return {
    nowInstanceId: 0, lastChecksum: 0, minChosenInstanceId: 0,
    acceptor: { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 },
  };
}

/** The start-up rule of runtime/restore.ts for state machines that keep nothing durable. */
export function restoreFromRecords(records: ReadonlyMap<number, AcceptorRecord>): RestoredGroupState {
  if (records.size === 0) return emptyState();
  const maxInstanceId = Math.max(...records.keys());
  const newest = records.get(maxInstanceId) as AcceptorRecord;
  return {
    nowInstanceId: maxInstanceId,
    lastChecksum: maxInstanceId > 0 ? records.get(maxInstanceId - 1)?.checksum ?? 0 : 0,
    minChosenInstanceId: 0,
    acceptor: { promised: newest.promised, accepted: newest.accepted, value: newest.value, checksum: newest.checksum },
  };
}

function matches(entry: InFlightMessage, filter: MessageFilter): boolean {
  return (filter.from === undefined || entry.message.from === filter.from) &&
    (filter.to === undefined || entry.to === filter.to) &&
    (filter.kind === undefined || entry.message.kind === filter.kind) &&
    (filter.instanceId === undefined || entry.message.instanceId === filter.instanceId) &&
    (filter.where === undefined || filter.where(entry.message));
}


export function describe(message: PaxosMessage): string {
  const ballot = 'ballot' in message ? ` b=${formatBallotShort(message.ballot)}` : '';
  return `${message.kind}#${message.instanceId} from n${message.from}${ballot}`;
}

function formatBallotShort(ballot: Ballot): string {
  return `${ballot.proposalId}.${ballot.nodeId}`;
}
