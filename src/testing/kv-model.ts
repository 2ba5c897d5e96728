/**
 * The sequential model of the KV service (docs/kv-service.md) for the linearizability checker,
 * and a recorder that turns what clients saw into a history the checker can judge.
 *
 * Per key: a value (null when never written or deleted) and a version (0 when never written). A put
 * or delete may name the version it expects; it applies only when the key is at that version, and
 * then the version grows by one (a delete too: the tombstone keeps counting). A refused conditional
 * write answers VERSION_CONFLICT with the key's current version and changes nothing. A delete of a
 * key that is not set (null value) whose guard holds answers KEY_NOT_FOUND with the key's version and
 * changes nothing. Keys are independent, so the model partitions by key.
 */
import { KvError } from '../kv/kv-error.js';
import { UNKNOWN, type Model, type Operation, type Unknown } from './linearizability.js';

export type KvInput =
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'put'; readonly key: string; readonly value: string; readonly expectedVersion?: number }
  | { readonly kind: 'delete'; readonly key: string; readonly expectedVersion?: number };

export type KvWriteOutput =
  | { readonly ok: true; readonly version: number }
  | { readonly ok: false; readonly code: 'VERSION_CONFLICT'; readonly version: number }
  /** A delete of a key that is not set: nothing changed; the key's version. */
  | { readonly ok: false; readonly code: 'KEY_NOT_FOUND'; readonly version: number };

export interface KvReadOutput {
  readonly value: string | null;
  readonly version: number;
}

export type KvOutput = KvWriteOutput | KvReadOutput;

export interface KvState {
  readonly value: string | null;
  readonly version: number;
}

export type KvOperation = Operation<KvInput, KvOutput>;

const INITIAL: KvState = Object.freeze({ value: null, version: 0 });

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => INITIAL,

  step(state, input, output) {
    if (input.kind === 'get') {
      // A read without an answer changed nothing (recorders drop those; accepting one costs nothing).
      if (output === UNKNOWN) return state;
      if (isWriteOutput(output)) return undefined;
      return output.value === state.value && output.version === state.version ? state : undefined;
    }
    const guardHolds = input.expectedVersion === undefined || input.expectedVersion === state.version;
    // A delete of a key that is not set changes nothing (checked after the guard).
    const applies = guardHolds && !(input.kind === 'delete' && state.value === null);
    if (output === UNKNOWN) {
      // If it took effect here, it applied exactly when it applies; a write that never took effect
      // is the search placing it after everything else (its ret is Infinity), so that needs nothing here.
      return applies ? applied(state, input) : state;
    }
    if (!isWriteOutput(output)) return undefined;
    if (output.ok) return applies && output.version === state.version + 1 ? applied(state, input) : undefined;
    if (output.code === 'KEY_NOT_FOUND') {
      return input.kind === 'delete' && guardHolds && !applies && output.version === state.version ? state : undefined;
    }
    return !guardHolds && output.version === state.version ? state : undefined;
  },

  // Versions only grow, by one per applied write, and a version names one state: so an output with a
  // version the state has passed, or with the state's own version but another value, is out of reach.
  couldStepLater(state, input, output) {
    if (output === UNKNOWN) return true;
    if (input.kind === 'get') {
      if (isWriteOutput(output)) return false;
      return output.version > state.version || (output.version === state.version && output.value === state.value);
    }
    if (!isWriteOutput(output)) return false;
    if (output.ok) {
      const before = output.version - 1;
      return before >= state.version && (input.expectedVersion === undefined || input.expectedVersion === before);
    }
    if (output.code === 'KEY_NOT_FOUND') {
      const guardCouldHold = input.expectedVersion === undefined || input.expectedVersion === output.version;
      return input.kind === 'delete' && guardCouldHold &&
        (output.version > state.version || (output.version === state.version && state.value === null));
    }
    return input.expectedVersion !== undefined && input.expectedVersion !== output.version &&
      output.version >= state.version;
  },

  // Injective: the version, then a marker that tells null from every string.
  hash: (state) => `${state.version}:${state.value === null ? 'n' : `s${state.value}`}`,

  equal: (a, b) => a.value === b.value && a.version === b.version,

  partition: (operation) => operation.input.key,

  describeOperation(input, output) {
    const guard = input.kind !== 'get' && input.expectedVersion !== undefined ? ` if @${input.expectedVersion}` : '';
    const what = input.kind === 'put' ? `put ${JSON.stringify(input.key)} ${JSON.stringify(input.value)}${guard}`
      : `${input.kind} ${JSON.stringify(input.key)}${guard}`;
    return `${what} -> ${describeOutput(output)}`;
  },

  describeState: (state) => `${JSON.stringify(state.value)} @${state.version}`,
};

function applied(state: KvState, input: KvInput & { kind: 'put' | 'delete' }): KvState {
  return { value: input.kind === 'put' ? input.value : null, version: state.version + 1 };
}

function isWriteOutput(output: KvOutput): output is KvWriteOutput {
  return 'ok' in output;
}

function describeOutput(output: KvOutput | Unknown): string {
  if (output === UNKNOWN) return 'UNKNOWN (may have taken effect)';
  if (!isWriteOutput(output)) return `${JSON.stringify(output.value)} @${output.version}`;
  return output.ok ? `ok @${output.version}` : `${output.code} @${output.version}`;
}

export interface KvWriteCallOptions {
  /** Apply only when the key is at this version. */
  version?: number;
  timeoutMs?: number;
}

/** What the recorder needs of a client: KvClient has it; so can an in-memory fake. */
export interface KvClientLike {
  get(key: string, options?: { timeoutMs?: number }): Promise<KvReadOutput>;
  put(key: string, value: string, options?: KvWriteCallOptions): Promise<{ readonly version: number }>;
  /** `deleted: false` (KvClient's answer for a key that is not set) is the output KEY_NOT_FOUND. */
  delete(key: string, options?: KvWriteCallOptions): Promise<{ readonly version: number; readonly deleted?: boolean }>;
}

/**
 * One operation as a client saw it. `outcome`: 'ok' answered (a version conflict, or a delete's
 * KEY_NOT_FOUND, too); 'unknown' a write that may have been applied; 'failed' certainly without
 * effect (a refused write, any failed read); 'pending' still running.
 */
export interface RecordedOperation {
  readonly clientId: number | string;
  readonly input: KvInput;
  readonly call: number;
  readonly ret: number | undefined;
  readonly outcome: 'pending' | 'ok' | 'unknown' | 'failed';
  readonly output: KvOutput | undefined;
  readonly error: { readonly code: string; readonly mayHaveBeenApplied: boolean; readonly message: string } | undefined;
}

export interface OperationHandle {
  succeed(output: KvOutput): void;
  /**
   * Returns what the failure counts as an answer: a VERSION_CONFLICT is a write's output, a
   * KEY_NOT_FOUND a delete's; else undefined.
   */
  fail(error: unknown): KvOutput | undefined;
}

export interface RecorderCounts {
  readonly ok: number;
  /** Answered refusals of writes: VERSION_CONFLICT, and KEY_NOT_FOUND of a delete. */
  readonly conflicts: number;
  readonly unknown: number;
  readonly failed: number;
  readonly pending: number;
  /** Failures by error code, for diagnostics. */
  readonly codes: Readonly<Record<string, number>>;
}

export interface HistoryRecorder {
  /** Start an operation now; end it exactly once through the handle. */
  begin(clientId: number | string, input: KvInput): OperationHandle;
  /** Run `input` on `client`, recorded; resolves with the output, or undefined when it failed. */
  perform(clientId: number | string, client: KvClientLike, input: KvInput, options?: { timeoutMs?: number },
  ): Promise<KvOutput | undefined>;
  /** Everything recorded, in call order. */
  entries(): readonly RecordedOperation[];
  /** The normalised history to check (see historyRecorder). */
  history(): KvOperation[];
  counts(): RecorderCounts;
}

/**
 * A recorder of KV operations. Every timestamp comes from one clock (`performance.now()` unless
 * `now` is given), because comparing instants of different clocks would invent or hide overlaps.
 *
 * `history()` normalises, following what each outcome says about the effect:
 *  - an answer is the operation's output (a VERSION_CONFLICT error is the output of a refused write,
 *    a KEY_NOT_FOUND error that of a delete of a key that is not set);
 *  - a write that certainly was not applied (`mayHaveBeenApplied: false`: NOT_MASTER, NO_MASTER,
 *    OVERLOADED, a refused connection, ...) had no effect and is left out;
 *  - a write that may have been applied (or failed in a way we cannot classify, or never finished)
 *    becomes UNKNOWN with ret = Infinity: it may have taken effect at any moment after its call;
 *  - a read that did not answer has no effect and tells nothing, so it is left out.
 */
export function historyRecorder(options: { now?: () => number } = {}): HistoryRecorder {
  const now = options.now ?? (() => performance.now());
  const recorded: RecordedOperation[] = [];

  const begin = (clientId: number | string, input: KvInput): OperationHandle => {
    const index = recorded.length;
    const start: RecordedOperation = {
      clientId, input, call: now(), ret: undefined, outcome: 'pending', output: undefined, error: undefined,
    };
    recorded.push(start);
    const end = (outcome: RecordedOperation['outcome'], output: KvOutput | undefined, error: RecordedOperation['error'],
    ): void => {
      if (recorded[index]?.outcome !== 'pending') throw new Error('an operation was ended twice');
      recorded[index] = { ...start, ret: now(), outcome, output, error };
    };
    return {
      succeed: (output) => end('ok', output, undefined),
      fail(error) {
        const isWrite = input.kind !== 'get';
        if (error instanceof KvError) {
          const details = { code: error.code, mayHaveBeenApplied: error.mayHaveBeenApplied, message: error.message };
          const refusal = error.code === 'VERSION_CONFLICT' ? 'VERSION_CONFLICT'
            : error.code === 'KEY_NOT_FOUND' && input.kind === 'delete' ? 'KEY_NOT_FOUND' : undefined;
          if (isWrite && refusal !== undefined && error.version !== undefined) {
            const output: KvOutput = { ok: false, code: refusal, version: error.version };
            end('ok', output, details);
            return output;
          }
          end(isWrite && error.mayHaveBeenApplied ? 'unknown' : 'failed', undefined, details);
          return undefined;
        }
        // Not the service's error (a bug, a broken client): a write's effect is then unknown.
        const details = { code: 'UNEXPECTED', mayHaveBeenApplied: isWrite, message: String(error) };
        end(isWrite ? 'unknown' : 'failed', undefined, details);
        return undefined;
      },
    };
  };

  return {
    begin,
    async perform(clientId, client, input, callOptions = {}) {
      const handle = begin(clientId, input);
      try {
        let output: KvOutput;
        if (input.kind === 'get') {
          const { value, version } = await client.get(input.key, callOptions);
          output = { value, version };
        } else {
          const writeOptions = input.expectedVersion === undefined ? callOptions
            : { ...callOptions, version: input.expectedVersion };
          if (input.kind === 'put') {
            output = { ok: true, version: (await client.put(input.key, input.value, writeOptions)).version };
          } else {
            const { version, deleted } = await client.delete(input.key, writeOptions);
            output = deleted === false ? { ok: false, code: 'KEY_NOT_FOUND', version } : { ok: true, version };
          }
        }
        handle.succeed(output);
        return output;
      } catch (error) {
        return handle.fail(error);
      }
    },
    entries: () => [...recorded],
    history: () => normalise(recorded),
    counts() {
      const codes: Record<string, number> = {};
      let ok = 0;
      let conflicts = 0;
      let unknown = 0;
      let failed = 0;
      let pending = 0;
      for (const entry of recorded) {
        if (entry.error !== undefined) codes[entry.error.code] = (codes[entry.error.code] ?? 0) + 1;
        if (entry.outcome === 'ok') {
          if (entry.output !== undefined && isWriteOutput(entry.output) && !entry.output.ok) conflicts++;
          else ok++;
        } else if (entry.outcome === 'unknown') {
          unknown++;
        } else if (entry.outcome === 'failed') {
          failed++;
        } else {
          pending++;
        }
      }
      return { ok, conflicts, unknown, failed, pending, codes };
    },
  };
}

function normalise(recorded: readonly RecordedOperation[]): KvOperation[] {
  const history: KvOperation[] = [];
  for (const entry of recorded) {
    const { clientId, input, call } = entry;
    if (entry.outcome === 'ok' && entry.output !== undefined && entry.ret !== undefined) {
      history.push({ clientId, input, call, output: entry.output, ret: entry.ret });
    } else if (input.kind !== 'get' && (entry.outcome === 'unknown' || entry.outcome === 'pending')) {
      history.push({ clientId, input, call, output: UNKNOWN, ret: Infinity });
    }
  }
  return history;
}
