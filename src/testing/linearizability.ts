/**
 * A linearizability checker for histories of concurrent operations against a sequential model (the
 * Wing & Gong / Lowe search as Porcupine does it, with P-compositionality).
 *
 * A history is linearizable when every operation can be given a single instant inside its interval
 * [call, ret] such that, taken in the order of those instants, the operations are a legal run of the
 * model from its initial state, each producing the output it was observed to produce.
 *
 * How the search works, and why:
 *  - Linearizability is local (Herlihy & Wing): a history is linearizable iff each object's
 *    sub-history is. So the model names a partition (a key) per operation and every partition is
 *    searched on its own, which turns one exponential search into many small ones.
 *  - Per partition, a depth-first search over "which operation takes effect next". The candidates
 *    are the operations whose call comes before the earliest return among those not yet placed (an
 *    operation that returned cannot be overtaken by one that had not started). The events live in a
 *    doubly linked list from which a placed operation is unlinked and, on backtracking, relinked.
 *  - Memoisation: two search nodes with the same set of placed operations and equal model states
 *    have the same future, so each (set, state) is explored once. That is what makes the search
 *    practical on histories of thousands of operations.
 *  - Intervals are closed: events at the same instant order calls before returns, so operations
 *    that touch at one timestamp count as concurrent (the generous, never falsely-illegal, reading).
 *  - An operation whose outcome is unknown (a write that timed out) has `ret = Infinity` and output
 *    `UNKNOWN`; the model must accept UNKNOWN in any state. Since it can be placed after everything
 *    else, "it never happened" is one of the orders considered. Unlike Porcupine, the search places
 *    such an operation only where its effect is needed (see PartitionSearch): dozens of them per key,
 *    as a run under faults produces, would otherwise make it explore every subset of them.
 *  - Partitions are searched round-robin, a slice of steps each, so that one partition that is slow
 *    to decide does not hide another that is quickly illegal; the whole search has a step budget and
 *    answers 'unknown' rather than running for ever (the problem is NP-complete).
 */

/** The output of an operation whose effect is unknown (it may or may not have taken effect). */
export const UNKNOWN: unique symbol = Symbol('UNKNOWN');
export type Unknown = typeof UNKNOWN;

export interface Operation<I, O> {
  /** Who issued it: only used in explanations. */
  readonly clientId: number | string;
  readonly input: I;
  /** When it was invoked, on the same clock as every other timestamp of the history. */
  readonly call: number;
  readonly output: O | Unknown;
  /** When it returned; Infinity when the outcome is unknown (it may take effect at any later time). */
  readonly ret: number;
}

/**
 * A sequential specification. `S` must not include `undefined`, which `step` uses for "impossible".
 */
export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after `input` takes effect in `state` producing `output`, or undefined when it cannot
   * (the output is not what the model produces there). UNKNOWN must be accepted in every state.
   */
  step(state: S, input: I, output: O | Unknown): S | undefined;
  /** Equal states must hash alike; different states should rarely. */
  hash(state: S): string | number;
  equal(a: S, b: S): boolean;
  /**
   * Optional pruning: false only when `input` cannot produce `output` in `state` nor in any state
   * reachable from it (say, a version the state has already passed). Never false wrongly.
   */
  couldStepLater?(state: S, input: I, output: O | Unknown): boolean;
  /** The partition (object, key) an operation belongs to; absent: one partition for everything. */
  partition?(operation: Operation<I, O>): string;
  /** For explanations; JSON is used when absent. */
  describeOperation?(input: I, output: O | Unknown): string;
  describeState?(state: S): string;
}

export interface CheckOptions {
  /** Total search steps over all partitions before giving up with 'unknown' (default 20,000,000). */
  readonly maxSteps?: number;
  /** Steps one partition may take before the next partition's turn (default 10,000). */
  readonly stepsPerTurn?: number;
}

/** Why a partition is not linearizable: where the deepest attempt got stuck. */
export interface Counterexample<S, I, O> {
  /** The longest sequence of operations found that is a legal run consistent with real time. */
  readonly prefix: readonly Operation<I, O>[];
  /** The model's state after it. */
  readonly state: S;
  /** The unplaced operation that returned first: it had to come next or earlier, and could not. */
  readonly blocked: Operation<I, O>;
  /** Every operation that could have come next (its call precedes `blocked`'s return). */
  readonly candidates: readonly Operation<I, O>[];
  /**
   * Candidates that fit `state` but were not placed because, by the model's `couldStepLater`, the
   * operation due next after them (`strands`) could then never be placed: often the real culprit,
   * like a stale read that began after a write it does not see.
   */
  readonly pruned: readonly { readonly candidate: Operation<I, O>; readonly strands: Operation<I, O> }[];
}

export interface CheckResult<S, I, O> {
  readonly result: 'ok' | 'illegal' | 'unknown';
  /** 'illegal': the partition proved illegal; 'unknown': the first one left undecided. */
  readonly partition?: string;
  /** 'illegal' and 'unknown': what to print when a test fails. */
  readonly explanation?: string;
  readonly counterexample?: Counterexample<S, I, O>;
  /** 'unknown': every partition the budget did not decide. */
  readonly undecided?: readonly string[];
  readonly partitions: number;
  readonly operations: number;
  readonly steps: number;
}

const DEFAULT_MAX_STEPS = 20_000_000;
const DEFAULT_STEPS_PER_TURN = 10_000;
/** How many operations of the prefix an explanation shows (its end is where things went wrong). */
const PREFIX_SHOWN = 8;
const CANDIDATES_SHOWN = 8;

/**
 * Check `history` against `model`. Operations are taken as they are: normalising a real history (what
 * to drop, what is UNKNOWN) is the caller's job.
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {},
): CheckResult<S, I, O> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const stepsPerTurn = options.stepsPerTurn ?? DEFAULT_STEPS_PER_TURN;
  if (!(maxSteps > 0) || !(stepsPerTurn > 0)) throw new RangeError('maxSteps and stepsPerTurn must be positive');
  history.forEach(validate);

  const groups = new Map<string, Operation<I, O>[]>();
  for (const operation of history) {
    const key = model.partition?.(operation) ?? '';
    let list = groups.get(key);
    if (list === undefined) groups.set(key, list = []);
    list.push(operation);
  }
  let running = [...groups].map(([key, operations]) => new PartitionSearch(model, key, operations));
  const summary = { partitions: groups.size, operations: history.length };
  let steps = 0;
  while (running.length > 0) {
    for (const search of running) {
      const budget = Math.min(stepsPerTurn, maxSteps - steps);
      steps += search.run(budget);
      if (search.status === 'illegal') {
        const counterexample = search.counterexample();
        return {
          result: 'illegal', partition: search.key, counterexample,
          explanation: explain(model, search.key, search.size, counterexample), ...summary, steps,
        };
      }
      const undecided = steps >= maxSteps
        ? running.filter((each) => each.status === 'running').map((each) => each.key) : [];
      const first = undecided[0];
      if (first !== undefined) {
        return {
          result: 'unknown', partition: first, undecided, ...summary, steps,
          explanation: `the step budget (${maxSteps}) ran out before ${undecided.length} of ${groups.size} ` +
            `partitions were decided, first ${JSON.stringify(first)}; every decided partition is linearizable`,
        };
      }
    }
    running = running.filter((search) => search.status === 'running');
  }
  return { result: 'ok', ...summary, steps };
}

function validate<I, O>(operation: Operation<I, O>, index: number): void {
  const { call, ret } = operation;
  if (!Number.isFinite(call) || Number.isNaN(ret) || ret < call) {
    throw new RangeError(`operation ${index}: needs a finite call and a ret at or after it, got [${call}, ${ret}]`);
  }
}

/** One event of the linked list: the call or the return of operation `id`. */
interface EventNode {
  readonly id: number;
  readonly isCall: boolean;
  /** A call's return event. */
  readonly match: EventNode | undefined;
  prev: EventNode | undefined;
  next: EventNode | undefined;
}

interface Frame<S> {
  readonly call: EventNode;
  /** The state before `call`'s operation took effect: restored when it is taken back. */
  readonly state: S;
  /** The scan phase it was placed in, resumed after it is taken back. */
  readonly phase: 0 | 1;
}

interface CacheEntry<S> {
  readonly placed: Uint32Array;
  readonly state: S;
}

/**
 * The search of one partition, resumable so partitions can take turns.
 *
 * Operations with output UNKNOWN and ret Infinity ("open" ones, typically writes that timed out) are
 * handled so they cost little, which matters because a real history under faults has dozens of them:
 *  - they are tried only after the definite candidates at a node all failed (phase 1 of the scan):
 *    an open operation is placed just when some output needs its effect, not wherever it could be;
 *  - one whose effect here would leave the state as it is is not placed here at all: it may as well
 *    go after everything else (the model accepts UNKNOWN in any state, and nothing waits for its
 *    return), and placing it here would only multiply the orders searched by every subset of them;
 *  - so the search succeeds once every other operation is placed, the open ones left for the end.
 * With the model's optional `couldStepLater`, a step is also refused when it makes the operation
 * that must come soonest (the earliest return among the unplaced) impossible for good.
 */
class PartitionSearch<S, I, O> {
  readonly key: string;
  status: 'running' | 'ok' | 'illegal' = 'running';
  private readonly model: Model<S, I, O>;
  private readonly operations: readonly Operation<I, O>[];
  private readonly open: readonly boolean[];
  /** Operations not open and not placed: none left means linearizable. */
  private definiteLeft: number;
  private readonly head: EventNode;
  private cursor: EventNode | undefined;
  /** 0: trying the definite candidates of this node; 1: the open ones. */
  private phase: 0 | 1 = 0;
  /** The first return event of the list, computed once per search node (undefined: not yet). */
  private firstReturn: EventNode | undefined;
  private state: S;
  private readonly stack: Frame<S>[] = [];
  /** Which operations are placed, and two 32-bit Zobrist hashes of that set kept up to date on each change. */
  private readonly placed: Uint32Array;
  private readonly zobrist: Uint32Array;
  private hashLow = 0;
  private hashHigh = 0;
  private readonly cache = new Map<string, CacheEntry<S>[]>();
  /** Candidates of this search node refused by couldStepLater, and the operation each would strand. */
  private pruned: { candidate: number; strands: number }[] = [];
  /** The deepest dead end so far: the best explanation of an illegal partition. */
  private deepest: {
    depth: number; prefix: number[]; state: S; blocked: number; candidates: number[];
    pruned: { candidate: number; strands: number }[];
  } | undefined;

  constructor(model: Model<S, I, O>, key: string, operations: readonly Operation<I, O>[]) {
    this.model = model;
    this.key = key;
    this.operations = operations;
    this.open = operations.map((operation) => operation.output === UNKNOWN && operation.ret === Infinity);
    this.definiteLeft = this.open.filter((open) => !open).length;
    this.state = model.init();
    this.placed = new Uint32Array(Math.ceil(operations.length / 32));
    this.zobrist = new Uint32Array(operations.length * 2);
    // A fixed xorshift sequence: the search is deterministic, so a failure reproduces exactly.
    let seed = 0x9e3779b9;
    for (let index = 0; index < this.zobrist.length; index++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      this.zobrist[index] = seed >>> 0;
    }
    this.head = { id: -1, isCall: false, match: undefined, prev: undefined, next: undefined };
    this.buildEvents();
    this.cursor = this.head.next;
  }

  get size(): number {
    return this.operations.length;
  }

  /** Search for up to `budget` steps; returns the steps taken. */
  run(budget: number): number {
    let steps = 0;
    while (this.status === 'running' && steps < budget) {
      steps++;
      if (this.definiteLeft === 0) {
        this.status = 'ok';
        break;
      }
      // Some definite operation is unplaced, and its return event is in the list after every call
      // that could precede it, so a scan always meets a return before the list ends.
      const event = this.cursor as EventNode;
      if (event.isCall) {
        this.cursor = event.next;
        if ((this.open[event.id] === true) === (this.phase === 1)) this.tryToPlace(event);
        continue;
      }
      if (this.phase === 0) {
        this.phase = 1;
        this.cursor = this.head.next;
        continue;
      }
      // A return whose operation is not placed: no candidate placed next leads anywhere.
      this.noteDeadEnd(event);
      const frame = this.stack.pop();
      if (frame === undefined) {
        this.status = 'illegal';
        break;
      }
      this.state = frame.state;
      this.toggle(frame.call.id);
      unlift(frame.call);
      this.firstReturn = undefined;
      this.pruned = [];
      if (this.open[frame.call.id] !== true) this.definiteLeft++;
      this.phase = frame.phase;
      this.cursor = frame.call.next;
    }
    return steps;
  }

  /** Place the operation of `call` next if it fits and leads somewhere new; the search then goes one level down. */
  private tryToPlace(call: EventNode): void {
    const { id } = call;
    const operation = this.operations[id] as Operation<I, O>;
    const next = this.model.step(this.state, operation.input, operation.output);
    if (next === undefined) return;
    const open = this.open[id] === true;
    if (open && this.model.equal(next, this.state)) return;
    const forced = this.forcedAfter(call);
    if (forced !== undefined && this.open[forced.id] !== true && this.model.couldStepLater !== undefined) {
      const must = this.operations[forced.id] as Operation<I, O>;
      if (!this.model.couldStepLater(next, must.input, must.output)) {
        this.pruned.push({ candidate: id, strands: forced.id });
        return;
      }
    }
    if (!this.remember(id, next)) return;
    this.stack.push({ call, state: this.state, phase: this.phase });
    this.state = next;
    lift(call);
    this.firstReturn = undefined;
    this.pruned = [];
    if (!open) this.definiteLeft--;
    this.phase = 0;
    this.cursor = this.head.next;
  }

  /** The return event that will come first once `call`'s operation is placed. */
  private forcedAfter(call: EventNode): EventNode | undefined {
    if (this.firstReturn === undefined) {
      let event = this.head.next;
      while (event !== undefined && event.isCall) event = event.next;
      this.firstReturn = event;
    }
    let forced = this.firstReturn;
    if (forced !== undefined && forced === call.match) {
      forced = forced.next;
      while (forced !== undefined && forced.isCall) forced = forced.next;
    }
    return forced;
  }

  counterexample(): Counterexample<S, I, O> {
    const deepest = this.deepest;
    if (deepest === undefined) throw new Error('no dead end recorded');
    const of = (id: number): Operation<I, O> => this.operations[id] as Operation<I, O>;
    return {
      prefix: deepest.prefix.map(of), state: deepest.state, blocked: of(deepest.blocked),
      candidates: deepest.candidates.map(of),
      pruned: deepest.pruned.map(({ candidate, strands }) => ({ candidate: of(candidate), strands: of(strands) })),
    };
  }

  private buildEvents(): void {
    const events: EventNode[] = [];
    this.operations.forEach((_, id) => {
      const ret: EventNode = { id, isCall: false, match: undefined, prev: undefined, next: undefined };
      events.push({ id, isCall: true, match: ret, prev: undefined, next: undefined }, ret);
    });
    const time = (event: EventNode): number => {
      const operation = this.operations[event.id] as Operation<I, O>;
      return event.isCall ? operation.call : operation.ret;
    };
    // Closed intervals: at equal times calls come first. Otherwise the order of the history (sort is
    // stable), also among the returns at Infinity (Infinity - Infinity is NaN, which counts as a tie).
    events.sort((a, b) => time(a) - time(b) || Number(b.isCall) - Number(a.isCall));
    let previous = this.head;
    for (const event of events) {
      previous.next = event;
      event.prev = previous;
      previous = event;
    }
  }

  /** Mark `id` placed in `next`; false (and unmarked) when this placed set and state were explored before. */
  private remember(id: number, next: S): boolean {
    this.toggle(id);
    const key = `${this.hashLow}.${this.hashHigh}.${this.model.hash(next)}`;
    let bucket = this.cache.get(key);
    if (bucket === undefined) {
      this.cache.set(key, bucket = []);
    } else if (bucket.some((entry) => sameBits(entry.placed, this.placed) && this.model.equal(entry.state, next))) {
      this.toggle(id);
      return false;
    }
    bucket.push({ placed: this.placed.slice(), state: next });
    return true;
  }

  private toggle(id: number): void {
    this.placed[id >>> 5] = (this.placed[id >>> 5] as number) ^ (1 << (id & 31));
    this.hashLow ^= this.zobrist[2 * id] as number;
    this.hashHigh ^= this.zobrist[2 * id + 1] as number;
  }

  private noteDeadEnd(blocked: EventNode): void {
    const depth = this.stack.length;
    if (this.deepest !== undefined && depth <= this.deepest.depth) return;
    const candidates: number[] = [];
    for (let event = this.head.next; event !== undefined && event !== blocked; event = event.next) {
      if (event.isCall) candidates.push(event.id);
    }
    this.deepest = {
      depth, prefix: this.stack.map((frame) => frame.call.id), state: this.state, blocked: blocked.id, candidates,
      pruned: this.pruned,
    };
  }
}

/** Unlink an operation's call and return events. */
function lift(call: EventNode): void {
  unlink(call);
  unlink(call.match as EventNode);
}

/** Relink what `lift` unlinked, in the reverse order: each node's neighbours are then as they were. */
function unlift(call: EventNode): void {
  relink(call.match as EventNode);
  relink(call);
}

function unlink(event: EventNode): void {
  (event.prev as EventNode).next = event.next;
  if (event.next !== undefined) event.next.prev = event.prev;
}

function relink(event: EventNode): void {
  (event.prev as EventNode).next = event;
  if (event.next !== undefined) event.next.prev = event;
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

function explain<S, I, O>(
  model: Model<S, I, O>, key: string, size: number, example: Counterexample<S, I, O>,
): string {
  const operation = (each: Operation<I, O>): string => {
    const ret = Number.isFinite(each.ret) ? each.ret.toFixed(3) : '∞';
    const what = model.describeOperation?.(each.input, each.output) ?? `${json(each.input)} -> ${json(each.output)}`;
    return `client ${each.clientId} [${each.call.toFixed(3)}, ${ret}] ${what}`;
  };
  const state = model.describeState?.(example.state) ?? json(example.state);
  const shown = example.prefix.slice(-PREFIX_SHOWN);
  const lines = [
    `partition ${JSON.stringify(key)} is not linearizable (${size} operations).`,
    `The longest legal order found places ${example.prefix.length} of them` +
      (shown.length === 0 ? '.' : shown.length === example.prefix.length ? ':' : `; its last ${shown.length}:`),
    ...shown.map((each) => `  ${operation(each)}`),
    `leaving the state ${state}.`,
    `Nothing can come next. The operations that could (they began before the first unplaced return):`,
    ...example.candidates.slice(0, CANDIDATES_SHOWN).map((each) =>
      `  ${operation(each)}${each === example.blocked ? '   <- returned first' : ''}`),
  ];
  if (example.candidates.length > CANDIDATES_SHOWN) {
    lines.push(`  ... and ${example.candidates.length - CANDIDATES_SHOWN} more`);
  }
  if (example.pruned.length > 0) {
    lines.push(`These fit the state, but each would leave no place for an operation due soon after:`);
    for (const { candidate, strands } of example.pruned.slice(0, CANDIDATES_SHOWN)) {
      lines.push(`  ${operation(candidate)}`, `    strands ${operation(strands)}`);
    }
  }
  // Open operations that would change nothing are left for the end rather than placed here.
  const unknownNote = example.candidates.some((each) => each.output === UNKNOWN && each.ret === Infinity)
    ? ' (those of unknown outcome that would leave it as it is are left for the end)' : '';
  lines.push(`${example.pruned.length > 0 ? 'The other candidates do not' : 'No candidate does'} fit the state${unknownNote}.`);
  return lines.join('\n');
}

function json(value: unknown): string {
  if (value === UNKNOWN) return 'UNKNOWN';
  return JSON.stringify(value) ?? String(value);
}
