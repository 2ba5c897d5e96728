/**
 * The simulator's safety checkers. They watch every message a node sends (before the network can
 * lose it) and every value a state machine executes, and record a violation the moment one of
 * these stops holding:
 *   - agreement: at most one value is chosen per (group, instance), where "chosen" means a
 *     majority of acceptors sent an accept reply for the same ballot, and one ballot names one value;
 *   - promises: an acceptor never grants a ballot below one it granted before, in the same or an
 *     earlier instance (promises carry over to later instances; skip-prepare relies on it);
 *   - validity: only values some client proposed are chosen (or the library's no-op, which finishes
 *     an instance that stalled);
 *   - execution: every node executes instances 0, 1, 2, ... in order, each exactly once per process
 *     life (no state machine sees a no-op), and every executed value is the value chosen there,
 *     with the same checksum chain;
 *   - determinism: every execution of one entry returns an equal result, on every node and in
 *     every life (compared as `util.inspect` renders it when returned);
 *   - durability: every proposal reported successful is executed at its instance on every node by
 *     the end of the run.
 */
import { inspect } from 'node:util';
import { compareBallots, formatBallot, type Ballot } from '../../core/ballot.js';
import type { PaxosMessage } from '../../core/messages.js';
import { proposalBody } from '../../core/proposal-identity.js';
import { decodeBatch } from '../../runtime/batch-value.js';
import {
  BATCH_STATE_MACHINE_ID, isUserStateMachineId, unframeValue, NO_STATE_MACHINE_ID,
} from '../../runtime/value-frame.js';
import { bytesEqual } from '../../util/bytes.js';
import { fullCrc32 } from '../crc32.js';

export class Violations {
  readonly list: string[] = [];

  add(message: string): void {
    if (this.list.length < 20) this.list.push(message);
  }

  get any(): boolean {
    return this.list.length > 0;
  }
}

/** A value no state machine executes (the no-op that finishes a stalled instance). */
export function isNoop(value: Uint8Array): boolean {
  return unframeValue(value).stateMachineId === NO_STATE_MACHINE_ID;
}

/** The values a chosen value carries, as proposed: a batch's entries, or the value itself. */
export function entriesOf(value: Uint8Array): Uint8Array[] {
  const body = proposalBody(value);
  const { stateMachineId, payload } = unframeValue(body);
  return stateMachineId === BATCH_STATE_MACHINE_ID ? decodeBatch(payload) : [body];
}

/**
 * The entries the workload's state machines see: the library's own values (master bids) are
 * proposed by the library, may legitimately repeat, and are checked by their own checker.
 */
export function userEntriesOf(value: Uint8Array): Uint8Array[] {
  return entriesOf(value).filter((entry) => isUserStateMachineId(unframeValue(entry).stateMachineId));
}

function key(...parts: number[]): string {
  return parts.join(':');
}

function ballotKey(ballot: Ballot): string {
  return formatBallot(ballot);
}

/** What the network tap sees: agreement, promises and validity. */
export class AgreementChecker {
  /** Entry bytes → how often they were chosen, and how often proposed. */
  private readonly chosenEntries = new Map<string, number>();
  private readonly proposed = new Map<string, number>();
  private readonly initialMembers: ReadonlySet<number>;
  /** group → the membership changes executed so far, by version (the instance of the change). */
  private readonly memberships = new Map<number, Map<number, ReadonlySet<number>>>();
  private readonly violations: Violations;
  /** (group, instance, ballot) → the value proposed under it. */
  private readonly ballotValues = new Map<string, Uint8Array>();
  /** (group, instance, ballot) → acceptors that accepted it. */
  private readonly acceptances = new Map<string, Set<number>>();
  /** (group, instance) → the chosen value. */
  readonly chosen = new Map<string, Uint8Array>();
  /** (group, node) → instance → highest ballot granted there. */
  private readonly grants = new Map<string, Map<number, Ballot>>();
  chosenCount = 0;
  noopsChosen = 0;
  /** Told of every instance the moment it is first seen chosen (the stall checker listens). */
  onChosen: ((groupIndex: number, instanceId: number) => void) | null = null;

  constructor(members: readonly number[], violations: Violations) {
    this.initialMembers = new Set(members);
    this.violations = violations;
  }

  /** Membership changes applied: count votes at instance v + 1 on over `members`. */
  membershipChanges = 0;

  /**
   * A node executed the membership change chosen at `version`. Every node must see the same members
   * for a version (the sequence is the same everywhere, so a node's view is a prefix of it).
   */
  noteMembership(groupIndex: number, version: number, members: readonly number[]): void {
    let changes = this.memberships.get(groupIndex);
    if (changes === undefined) {
      changes = new Map();
      this.memberships.set(groupIndex, changes);
    }
    const known = changes.get(version);
    const sorted = [...members].sort((a, b) => a - b);
    if (known === undefined) {
      changes.set(version, new Set(sorted));
      this.membershipChanges++;
    } else if ([...known].join(',') !== sorted.join(',')) {
      this.violations.add(`group ${groupIndex}: membership version ${version} is {${[...known].join(',')}} on one ` +
        `node and {${sorted.join(',')}} on another`);
    }
  }

  /** The voting members of one instance: set by the latest change chosen before it. */
  membersAt(groupIndex: number, instanceId: number): ReadonlySet<number> {
    let latest = -1;
    let members = this.initialMembers;
    for (const [version, set] of this.memberships.get(groupIndex) ?? []) {
      if (version < instanceId && version > latest) {
        latest = version;
        members = set;
      }
    }
    return members;
  }

  noteProposed(value: Uint8Array): void {
    const text = Buffer.from(value).toString('latin1');
    this.proposed.set(text, (this.proposed.get(text) ?? 0) + 1);
  }

  chosenValue(groupIndex: number, instanceId: number): Uint8Array | undefined {
    return this.chosen.get(key(groupIndex, instanceId));
  }

  onSend(groupIndex: number, message: PaxosMessage): void {
    switch (message.kind) {
      case 'accept':
        this.onAccept(groupIndex, message.instanceId, message.ballot, message.value);
        return;
      case 'acceptReply':
        if (message.rejectedBy !== 0) return;
        this.onGrant(groupIndex, message.from, message.instanceId, message.ballot, 'accepted');
        this.onAccepted(groupIndex, message.from, message.instanceId, message.ballot);
        return;
      case 'prepareReply':
        if (message.rejectedBy === 0) this.onGrant(groupIndex, message.from, message.instanceId, message.ballot, 'promised');
        return;
      default:
        return;
    }
  }

  private onAccept(groupIndex: number, instanceId: number, ballot: Ballot, value: Uint8Array): void {
    const id = `${key(groupIndex, instanceId)}:${ballotKey(ballot)}`;
    const earlier = this.ballotValues.get(id);
    if (earlier === undefined) this.ballotValues.set(id, value);
    else if (!bytesEqual(earlier, value)) {
      this.violations.add(`group ${groupIndex} instance ${instanceId}: ballot ${ballotKey(ballot)} carried two values`);
    }
  }

  private onAccepted(groupIndex: number, acceptor: number, instanceId: number, ballot: Ballot): void {
    const id = `${key(groupIndex, instanceId)}:${ballotKey(ballot)}`;
    let acceptors = this.acceptances.get(id);
    if (acceptors === undefined) {
      acceptors = new Set();
      this.acceptances.set(id, acceptors);
    }
    acceptors.add(acceptor);
    const members = this.membersAt(groupIndex, instanceId);
    let votes = 0;
    for (const voter of acceptors) if (members.has(voter)) votes++;
    if (votes < Math.floor(members.size / 2) + 1) return;
    const value = this.ballotValues.get(id);
    if (value === undefined) {
      this.violations.add(`group ${groupIndex} instance ${instanceId}: ballot ${ballotKey(ballot)} accepted by a ` +
        'majority but no accept message carried it');
      return;
    }
    const instanceKey = key(groupIndex, instanceId);
    const chosen = this.chosen.get(instanceKey);
    if (chosen === undefined) {
      this.chosen.set(instanceKey, value);
      this.chosenCount++;
      this.onChosen?.(groupIndex, instanceId);
      if (isNoop(value)) this.noopsChosen++;
      const proposed = (entry: Uint8Array): boolean => this.proposed.has(Buffer.from(entry).toString('latin1'));
      if (!isNoop(value) && !userEntriesOf(value).every(proposed)) {
        this.violations.add(`group ${groupIndex} instance ${instanceId}: chosen value was never proposed`);
      }
      if (!isNoop(value)) this.noteChosenEntries(groupIndex, instanceId, userEntriesOf(value));
    } else if (!bytesEqual(chosen, value)) {
      this.violations.add(`group ${groupIndex} instance ${instanceId}: two different values chosen ` +
        `(the second under ballot ${ballotKey(ballot)})`);
    }
  }

  /**
   * A value is chosen at most as often as it was proposed (in two instances, or twice in a batch,
   * only if two proposals carried it): a retry must never make one proposal execute twice.
   */
  private noteChosenEntries(groupIndex: number, instanceId: number, entries: readonly Uint8Array[]): void {
    for (const entry of entries) {
      const text = Buffer.from(entry).toString('latin1');
      const times = (this.chosenEntries.get(text) ?? 0) + 1;
      const proposed = this.proposed.get(text);
      // A value never proposed at all is reported as such, once.
      if (proposed !== undefined && times > proposed) {
        this.violations.add(`group ${groupIndex} instance ${instanceId}: a value was chosen ${times} times but ` +
          `proposed ${proposed} times`);
      }
      this.chosenEntries.set(text, times);
    }
  }

  private onGrant(groupIndex: number, node: number, instanceId: number, ballot: Ballot, what: string): void {
    const nodeKey = key(groupIndex, node);
    let byInstance = this.grants.get(nodeKey);
    if (byInstance === undefined) {
      byInstance = new Map();
      this.grants.set(nodeKey, byInstance);
    }
    for (const [earlierInstance, granted] of byInstance) {
      if (earlierInstance <= instanceId && compareBallots(ballot, granted) < 0) {
        this.violations.add(`group ${groupIndex} node ${node} ${what} ballot ${ballotKey(ballot)} at instance ` +
          `${instanceId} after granting ${ballotKey(granted)} at instance ${earlierInstance}`);
        return;
      }
    }
    const current = byInstance.get(instanceId);
    if (current === undefined || compareBallots(ballot, current) > 0) byInstance.set(instanceId, ballot);
  }
}

interface LifeKey {
  readonly node: number;
  readonly life: number;
  readonly groupIndex: number;
}

interface LifeProgress {
  nextInstanceId: number;
  chain: number;
  /**
   * Per state machine, the instance its state was restored through (a snapshot, at start-up or
   * installed): the library skips its values up to there, so the checker expects them skipped.
   */
  readonly skipThrough: Map<number, number>;
  /** The instance whose entries are being executed (a batch executes one entry at a time). */
  partial: {
    readonly instanceId: number;
    readonly expected: Uint8Array[];
    /** By user entry: executed here (undefined while not yet, or skipped behind a snapshot). */
    readonly executed: (Uint8Array | undefined)[];
    /** The next user entry to execute. */
    position: number;
  } | null;
}

/** What state machines see: order, exactly-once, agreement with the chosen values, the chain. */
export class ExecutionChecker {
  private readonly violations: Violations;
  private readonly agreement: AgreementChecker;
  private readonly lives = new Map<string, LifeProgress>();
  /** (group, instance) → {value, chain} as first executed anywhere. */
  private readonly canonical = new Map<string, { value: Uint8Array; chain: number }>();
  /** (node, group) → instance → the entries executed there, for the node's current life. */
  private readonly current = new Map<string, Map<number, (Uint8Array | undefined)[]>>();
  /** (group, instance, user entry index) → the result of its first execution anywhere, rendered. */
  private readonly results = new Map<string, string>();
  /** (node, group) → state machine → the highest instance a snapshot restored in this life covers. */
  private readonly restoredThrough = new Map<string, Map<number, number>>();
  executions = 0;
  noopsSkipped = 0;
  /** Acknowledged values found on a node through a snapshot it restored, not an execution. */
  heldBySnapshot = 0;

  constructor(agreement: AgreementChecker, violations: Violations) {
    this.agreement = agreement;
    this.violations = violations;
  }

  /** A process life started: its state machines are empty and must see instance 0 first. */
  onLifeStart(node: number, groupIndex: number): void {
    this.current.set(key(node, groupIndex), new Map());
    this.restoredThrough.set(key(node, groupIndex), new Map());
  }

  /**
   * A state machine executed `value` at `instanceId`: the whole chosen value, or one entry of a
   * chosen batch (entries must come in order, each once, and all of them before the next instance),
   * and returned `result`.
   */
  onExecute(life: LifeKey, instanceId: number, value: Uint8Array, result: unknown = undefined): void {
    this.executions++;
    const lifeKey = key(life.node, life.life, life.groupIndex);
    const progress = this.progressOf(lifeKey);
    const where = `node ${life.node} (life ${life.life}) group ${life.groupIndex}`;
    const partial = progress.partial;
    if (partial !== null && partial.instanceId === instanceId) {
      this.onEntry(life, progress, value, result, where);
      return;
    }
    if (partial !== null) {
      this.violations.add(`${where} executed instance ${instanceId} before finishing the batch of instance ` +
        `${partial.instanceId} (${partial.position} of ${partial.expected.length} entries)`);
      return;
    }
    // Instances in between may only be no-ops (which no state machine sees) or values of state
    // machines restored past them.
    for (; progress.nextInstanceId < instanceId; progress.nextInstanceId++) {
      const skipped = this.agreement.chosenValue(life.groupIndex, progress.nextInstanceId);
      const entries = skipped === undefined ? [] : userEntriesOf(skipped);
      const at = progress.nextInstanceId;
      if (skipped === undefined || !entries.every((entry) => this.isSkipped(progress, at, entry))) {
        this.violations.add(`${where} executed instance ${instanceId}, expected ${progress.nextInstanceId}`);
        return;
      }
      if (entries.length === 0) this.noopsSkipped++;
      else progress.chain = fullCrc32(skipped, progress.chain);
    }
    if (instanceId !== progress.nextInstanceId) {
      this.violations.add(`${where} executed instance ${instanceId} again (expected ${progress.nextInstanceId})`);
      return;
    }
    const chosen = this.agreement.chosenValue(life.groupIndex, instanceId);
    if (chosen === undefined) {
      this.violations.add(`${where} executed instance ${instanceId} before any value was chosen there`);
      return;
    }
    const expected = userEntriesOf(chosen);
    progress.partial = { instanceId, expected, executed: expected.map(() => undefined), position: 0 };
    this.onEntry(life, progress, value, result, where);
  }

  /**
   * A state machine of a node's life now holds every value up to `instanceId` (its snapshot, read
   * at start-up or installed; the digest checker vouches for its state): its values up to there are
   * skipped from now on, and an acknowledged value among them counts as executed on that node.
   */
  onRestored(life: LifeKey, stateMachineId: number, instanceId: number): void {
    const progress = this.progressOf(key(life.node, life.life, life.groupIndex));
    progress.skipThrough.set(stateMachineId, Math.max(progress.skipThrough.get(stateMachineId) ?? -1, instanceId));
    // An install replaces the state between instances; a batch cut short by it is not resumed.
    if (progress.partial !== null && progress.partial.instanceId <= instanceId) progress.partial = null;
    const restored = this.restoredThrough.get(key(life.node, life.groupIndex));
    restored?.set(stateMachineId, Math.max(restored.get(stateMachineId) ?? -1, instanceId));
  }

  private progressOf(lifeKey: string): LifeProgress {
    let progress = this.lives.get(lifeKey);
    if (progress === undefined) {
      progress = { nextInstanceId: 0, chain: 0, partial: null, skipThrough: new Map() };
      this.lives.set(lifeKey, progress);
    }
    return progress;
  }

  private isSkipped(progress: LifeProgress, instanceId: number, entry: Uint8Array): boolean {
    return instanceId <= (progress.skipThrough.get(unframeValue(entry).stateMachineId) ?? -1);
  }

  private onEntry(life: LifeKey, progress: LifeProgress, value: Uint8Array, result: unknown, where: string): void {
    const partial = progress.partial as NonNullable<LifeProgress['partial']>;
    const { instanceId, expected, executed } = partial;
    while (partial.position < expected.length &&
      this.isSkipped(progress, instanceId, expected[partial.position] as Uint8Array)) partial.position++;
    const entry = expected[partial.position];
    if (entry === undefined || !bytesEqual(entry, value)) {
      this.violations.add(`${where} executed at instance ${instanceId} (entry ${partial.position}) a value that ` +
        `is not the chosen one${entry === undefined ? ' (past the end of the batch)' : ''}`);
      return;
    }
    this.checkResult(life.groupIndex, instanceId, partial.position, result, where);
    executed[partial.position++] = value;
    this.current.get(key(life.node, life.groupIndex))?.set(instanceId, executed);
    while (partial.position < expected.length &&
      this.isSkipped(progress, instanceId, expected[partial.position] as Uint8Array)) partial.position++;
    if (partial.position < expected.length) return;
    progress.partial = null;
    progress.nextInstanceId++;
    const chosen = this.agreement.chosenValue(life.groupIndex, instanceId) as Uint8Array;
    progress.chain = fullCrc32(chosen, progress.chain);
    const instanceKey = key(life.groupIndex, instanceId);
    const canonical = this.canonical.get(instanceKey);
    if (canonical === undefined) this.canonical.set(instanceKey, { value: chosen, chain: progress.chain });
    else if (canonical.chain !== progress.chain) {
      this.violations.add(`${where} checksum chain differs from other nodes at instance ${instanceId}`);
    }
  }

  /**
   * The value (or batch entry) the node executed at `instanceId` in its current life, if any; or,
   * when the node holds it through a snapshot it restored (whose state the digest checker matched
   * against the executed values), the chosen entry itself.
   */
  executedBy(node: number, groupIndex: number, instanceId: number, batchIndex: number): Uint8Array | undefined {
    const executed = this.current.get(key(node, groupIndex))?.get(instanceId);
    const userIndex = this.userIndexOf(groupIndex, instanceId, batchIndex);
    if (userIndex === undefined) return undefined;
    const here = executed?.[userIndex];
    if (here !== undefined) return here;
    const chosen = this.agreement.chosenValue(groupIndex, instanceId);
    const entry = chosen === undefined ? undefined : userEntriesOf(chosen)[userIndex];
    if (entry === undefined) return undefined;
    const through = this.restoredThrough.get(key(node, groupIndex))?.get(unframeValue(entry).stateMachineId) ?? -1;
    if (instanceId > through) return undefined;
    this.heldBySnapshot++;
    return entry;
  }

  /**
   * Whether `result` is what executing the value at (instance, batch index) returned: the result a
   * proposer gets must be its own entry's.
   */
  isResultOf(result: unknown, groupIndex: number, instanceId: number, batchIndex: number): boolean {
    const userIndex = this.userIndexOf(groupIndex, instanceId, batchIndex);
    return userIndex !== undefined && this.results.get(key(groupIndex, instanceId, userIndex)) === render(result);
  }

  private checkResult(
    groupIndex: number, instanceId: number, entryIndex: number, result: unknown, where: string,
  ): void {
    const entryKey = key(groupIndex, instanceId, entryIndex);
    const rendered = render(result);
    const first = this.results.get(entryKey);
    if (first === undefined) this.results.set(entryKey, rendered);
    else if (first !== rendered) {
      this.violations.add(`${where} returned ${clip(rendered)} executing instance ${instanceId} (entry ${entryIndex}) ` +
        `where an earlier execution returned ${clip(first)}: the state machine is not deterministic`);
    }
  }

  /** Only user entries are executed (and recorded): skip the library's own entries before this one. */
  private userIndexOf(groupIndex: number, instanceId: number, batchIndex: number): number | undefined {
    const chosen = this.agreement.chosenValue(groupIndex, instanceId);
    if (chosen === undefined) return undefined;
    return entriesOf(chosen).slice(0, batchIndex)
      .filter((entry) => isUserStateMachineId(unframeValue(entry).stateMachineId)).length;
  }
}

/** Results are compared as rendered when returned, so a state machine that later mutates one does not matter. */
function render(result: unknown): string {
  return typeof result === 'string' ? `'${result}'`
    : inspect(result, { depth: Infinity, breakLength: Infinity, maxArrayLength: Infinity, maxStringLength: Infinity });
}

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
