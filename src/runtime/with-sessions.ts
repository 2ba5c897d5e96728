/**
 * Exactly-once commands for any state machine: `withSessions(machine)` wraps an embedder's state
 * machine in client sessions (session-table.ts; the Raft dissertation, §6.3). Values proposed to it
 * are frames (`encodeSessionFrame`):
 *
 *   register               open a session; the outcome names its id
 *   command(id, n, value)  the session's command number n: `value` goes to the wrapped machine
 *                          once; a retry of n (the same frame proposed again, because its outcome
 *                          was unknown) answers with the stored result without executing again
 *   plain(value)           a value outside any session, executed as it is
 *
 * Every frame carries the proposer's clock reading (`at`, ms): the session table's log time, which
 * expires idle sessions alike on every node and in every replay. A client keeps at most one command
 * outstanding per session and retries a command of unknown outcome with its number; an expired,
 * evicted or unknown session, or an older number, is refused (`ok: false`), never executed.
 *
 * The table lives in memory and is rebuilt by replaying the log, so the wrapped machine must not
 * keep checkpoints (a checkpoint would skip the replay that rebuilds it): a machine with
 * checkpoints keeps a SessionTable in its own state and snapshots, as the KV state machine does.
 * Frames are decoded strictly: a malformed one is refused with an outcome, identically on every
 * node, and never reaches the wrapped machine.
 */
import type { ExecuteInput, StateMachine } from './interfaces.js';
import { DEFAULT_MAX_SESSIONS, MAX_SESSION_TTL_MS, SessionTable } from './session-table.js';

export type SessionFrame =
  | { readonly kind: 'plain'; readonly value: Uint8Array }
  | { readonly kind: 'register'; readonly at: number; readonly ttlMs: number }
  | {
    readonly kind: 'command'; readonly session: number; readonly sequence: number; readonly at: number;
    readonly value: Uint8Array;
  };

export type SessionOutcome =
  /** A registration: the new session's id. */
  | { readonly ok: true; readonly session: number }
  /** A command (or a plain value): what the wrapped machine returned; `duplicate` for a retry answered again. */
  | { readonly ok: true; readonly result: unknown; readonly duplicate: boolean }
  | { readonly ok: false; readonly code: 'SESSION_EXPIRED' | 'STALE_SEQUENCE' | 'MALFORMED'; readonly message: string };

export class SessionFrameError extends Error {
  override readonly name = 'SessionFrameError';
}

const FORMAT = 0x53;
const KIND_PLAIN = 0;
const KIND_REGISTER = 1;
const KIND_COMMAND = 2;
const TWO_32 = 0x1_0000_0000;

export function encodeSessionFrame(frame: SessionFrame): Uint8Array {
  if (frame.kind === 'plain') return concat(Uint8Array.of(FORMAT, KIND_PLAIN), frame.value);
  const view = new DataView(new ArrayBuffer(frame.kind === 'register' ? 14 : 26));
  view.setUint8(0, FORMAT);
  view.setUint8(1, frame.kind === 'register' ? KIND_REGISTER : KIND_COMMAND);
  setUint64(view, 2, checkInteger(frame.at, 0, 'at'));
  if (frame.kind === 'register') {
    view.setUint32(10, checkInteger(frame.ttlMs, 1, 'ttlMs', MAX_SESSION_TTL_MS));
    return new Uint8Array(view.buffer);
  }
  setUint64(view, 10, checkInteger(frame.session, 1, 'session'));
  setUint64(view, 18, checkInteger(frame.sequence, 1, 'sequence'));
  return concat(new Uint8Array(view.buffer), frame.value);
}

/** The frame of a value; the payload is a view into `bytes`. */
export function decodeSessionFrame(bytes: Uint8Array): SessionFrame {
  if (bytes.length < 2 || bytes[0] !== FORMAT) throw new SessionFrameError('not a session frame');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = bytes[1];
  if (kind === KIND_PLAIN) return { kind: 'plain', value: bytes.subarray(2) };
  if (kind === KIND_REGISTER) {
    if (bytes.length !== 14) throw new SessionFrameError(`a registration has 14 bytes, not ${bytes.length}`);
    const ttlMs = view.getUint32(10);
    if (ttlMs < 1 || ttlMs > MAX_SESSION_TTL_MS) throw new SessionFrameError(`time to live ${ttlMs} ms is out of range`);
    return { kind: 'register', at: getUint64(view, 2), ttlMs };
  }
  if (kind !== KIND_COMMAND) throw new SessionFrameError(`unknown session frame kind ${String(kind)}`);
  if (bytes.length < 26) throw new SessionFrameError('a session command is truncated');
  const session = getUint64(view, 10);
  const sequence = getUint64(view, 18);
  if (session < 1 || sequence < 1) throw new SessionFrameError('session ids and sequence numbers start at 1');
  return { kind: 'command', session, sequence, at: getUint64(view, 2), value: bytes.subarray(26) };
}

/** `machine` with client sessions (see the header). `maxSessions` per group must be the same on every node. */
export function withSessions<M extends StateMachine>(
  machine: M, options: { readonly maxSessions?: number } = {},
): SessionStateMachine<M> {
  return new SessionStateMachine(machine, options.maxSessions ?? DEFAULT_MAX_SESSIONS);
}

export class SessionStateMachine<M extends StateMachine> implements StateMachine {
  readonly id: number;
  readonly inner: M;
  private readonly maxSessions: number;
  private readonly tables = new Map<number, SessionTable<unknown>>();
  /** Retries answered from a stored result, over all groups (for tests and metrics). */
  duplicates = 0;

  constructor(machine: M, maxSessions: number) {
    if (machine.checkpointInstanceId !== undefined || machine.openSnapshot !== undefined ||
      machine.installSnapshot !== undefined) {
      throw new TypeError('withSessions keeps its session table in memory, rebuilt by replay: it cannot wrap a ' +
        'state machine with checkpoints (keep a SessionTable in that machine\'s own snapshots instead)');
    }
    this.id = machine.id;
    this.inner = machine;
    this.maxSessions = maxSessions;
    // Checked here, not at the first registration: a bad bound must fail at start-up.
    void new SessionTable(maxSessions);
  }

  execute(input: ExecuteInput): SessionOutcome | Promise<SessionOutcome> {
    let frame: SessionFrame;
    try {
      frame = decodeSessionFrame(input.value);
    } catch (error) {
      if (error instanceof SessionFrameError) return { ok: false, code: 'MALFORMED', message: error.message };
      throw error;
    }
    if (frame.kind === 'plain') return this.run(input, frame.value, () => {});
    const table = this.table(input.groupIndex);
    if (frame.kind === 'register') return { ok: true, session: table.register(frame.at, frame.ttlMs) };
    const { session, sequence } = frame;
    const check = table.check(session, sequence, frame.at);
    switch (check.kind) {
      case 'duplicate':
        this.duplicates++;
        return { ok: true, result: check.reply, duplicate: true };
      case 'stale':
        return { ok: false, code: 'STALE_SEQUENCE', message: `session ${session} is at ${check.lastSequence}: this ` +
          `copy of ${sequence} was not executed; an earlier copy of it may have been` };
      // Only the client knows whether it sent an earlier copy of the number: the table cannot tell.
      case 'expired':
        return { ok: false, code: 'SESSION_EXPIRED', message: `session ${session} expired (or was evicted): this ` +
          `copy of ${sequence} was not executed; an earlier copy of it may have been` };
      case 'unknown':
        return { ok: false, code: 'SESSION_EXPIRED', message: `session ${session} was never registered; not executed` };
      case 'new':
        return this.run(input, frame.value, (result) => table.record(session, sequence, result));
    }
  }

  /** The group's session count and log time. */
  sessionStats(groupIndex: number): { readonly sessions: number; readonly logTime: number } {
    const table = this.tables.get(groupIndex);
    return { sessions: table?.size ?? 0, logTime: table?.now ?? 0 };
  }

  private run(
    input: ExecuteInput, value: Uint8Array, record: (result: unknown) => void,
  ): SessionOutcome | Promise<SessionOutcome> {
    const result = this.inner.execute({ ...input, value });
    // A rejection propagates before anything is recorded: the runtime executes the value again.
    if (result instanceof Promise) {
      return result.then((settled: unknown) => {
        record(settled);
        return { ok: true, result: settled, duplicate: false };
      });
    }
    record(result);
    return { ok: true, result, duplicate: false };
  }

  private table(groupIndex: number): SessionTable<unknown> {
    let table = this.tables.get(groupIndex);
    if (table === undefined) this.tables.set(groupIndex, table = new SessionTable<unknown>(this.maxSessions));
    return table;
  }
}

function checkInteger(value: number, min: number, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new SessionFrameError(`${what} ${value} is not an integer in [${min}, ${max}]`);
  }
  return value;
}

function setUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / TWO_32));
  view.setUint32(offset + 4, value % TWO_32);
}

function getUint64(view: DataView, offset: number): number {
  const high = view.getUint32(offset);
  if (high > 0x1f_ffff) throw new SessionFrameError('a number is not a safe integer');
  return high * TWO_32 + view.getUint32(offset + 4);
}

function concat(head: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}
