/**
 * Client sessions for exactly-once commands (the Raft dissertation, §6.3), as deterministic state
 * that a replicated state machine keeps per group: every node executes the same commands in the same
 * order and so holds the same table.
 *
 * - A client registers a session through the log and gets its id from the table: ids are handed out
 *   in order (1, 2, ...) and never again, so an id below `nextId` that is not in the table is a
 *   session that expired (or was evicted), and an id at or above it was never registered. Either way
 *   the command fails definitely. A registration is what tells the two apart from a new session: an
 *   implicit registration at the first command would let a retry that arrives after the session
 *   expired start it again and apply twice.
 * - The client numbers its commands 1, 2, ... and has at most one outstanding per session. The
 *   table keeps each session's last sequence number and the reply to it: a retry of that number gets
 *   the stored reply without executing again, an older number fails definitely (it can only be a
 *   duplicate of a command that was answered already), a higher one executes. Numbers may skip (a
 *   client that gave up on N goes on with N + 1; a late copy of N is then refused as old).
 * - Log time: the proposer stamps each session command with its wall clock; the table's time is the
 *   highest stamp executed so far. It is in the log, so every node and every replay agrees, and it
 *   never goes back, whatever the clocks of successive masters say, and moves at most
 *   MAX_LOG_TIME_STEP_MS per command. A session expires when the log time passes its last activity
 *   by more than its time to live (chosen at registration, so it is in the log too). A master with a
 *   clock far ahead can only expire sessions early (by at most a step per command): an honest error
 *   (SESSION_EXPIRED), never a double apply.
 * - The table is bounded: registering into a full table first drops every expired session, then,
 *   if it is still full, evicts the least recently active live one (evicted is expired). Refusing
 *   the registration instead was considered and rejected: sessions of clients that went away (a
 *   crashed process, a CLI run) stay live for their whole time to live, and would lock every new
 *   client out of exactly-once writes until then; an evicted client loses only the answer to its
 *   last write, and is told so honestly (SESSION_EXPIRED, maybe applied after an uncertain
 *   attempt; a fresh write is sent again in a new session). Sessions are kept in a Map in order
 *   of last activity (a touched session moves to the end), which is also the order they are saved
 *   and restored in.
 */

export interface SessionRecord<Reply> {
  readonly id: number;
  /** Log time of the session's registration or last command. */
  lastActiveAt: number;
  readonly ttlMs: number;
  /** The last sequence number executed (0: none yet). */
  lastSequence: number;
  /** The reply to `lastSequence` (undefined: none yet). */
  reply: Reply | undefined;
}

/** What the table says of a session command before it executes. */
export type SessionCheck<Reply> =
  /** Execute it, then `record` its reply. */
  | { readonly kind: 'new' }
  /** Executed already: answer `reply` again. */
  | { readonly kind: 'duplicate'; readonly reply: Reply }
  /** Older than the last executed: refuse, it was answered already. */
  | { readonly kind: 'stale'; readonly lastSequence: number }
  /** The session expired or was evicted (or was never registered): refuse. */
  | { readonly kind: 'expired' | 'unknown' };

/** The whole table, for a snapshot: sessions in order of last activity, oldest first. */
export interface SessionTableState<Reply> {
  readonly nextId: number;
  readonly logTime: number;
  readonly sessions: readonly SessionRecord<Reply>[];
}

export const DEFAULT_MAX_SESSIONS = 65_536;
/**
 * The most one command moves the log time forward. A group whose session commands come more than a
 * minute apart sees its log time fall behind the clocks, and catch up a minute per command: its
 * sessions then live longer than their time to live, never shorter.
 */
export const MAX_LOG_TIME_STEP_MS = 60_000;
/** The longest time to live a session may ask for (a day). */
export const MAX_SESSION_TTL_MS = 24 * 60 * 60 * 1000;

export class SessionTable<Reply> {
  readonly maxSessions: number;
  private sessions = new Map<number, SessionRecord<Reply>>();
  private nextId = 1;
  private logTime = 0;

  /** `maxSessions` must be the same on every node of a group: evictions must happen alike. */
  constructor(maxSessions = DEFAULT_MAX_SESSIONS) {
    if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
      throw new RangeError(`a session table holds at least 1 session, not ${maxSessions}`);
    }
    this.maxSessions = maxSessions;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** The log time: the highest stamp executed so far. */
  get now(): number {
    return this.logTime;
  }

  /** A new session, active from `at` (the registration's stamp); returns its id. */
  register(at: number, ttlMs: number): number {
    this.advance(at);
    this.dropExpiredOldest();
    // Full: every expired session goes before any live one is evicted (sessions have their own time
    // to live, so expired ones can sit behind a live one in the activity order).
    if (this.sessions.size >= this.maxSessions) this.dropAllExpired();
    while (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value as number;
      this.sessions.delete(oldest);
    }
    const id = this.nextId++;
    this.sessions.set(id, { id, lastActiveAt: this.logTime, ttlMs, lastSequence: 0, reply: undefined });
    return id;
  }

  /**
   * Where the command `sequence` of session `id`, stamped `at`, stands. A live session counts it as
   * activity (whatever the command's fate), so it moves to the end of the eviction order.
   */
  check(id: number, sequence: number, at: number): SessionCheck<Reply> {
    this.advance(at);
    const session = this.sessions.get(id);
    if (session === undefined) return { kind: id < this.nextId ? 'expired' : 'unknown' };
    if (this.logTime - session.lastActiveAt > session.ttlMs) {
      this.sessions.delete(id);
      return { kind: 'expired' };
    }
    session.lastActiveAt = this.logTime;
    this.sessions.delete(id);
    this.sessions.set(id, session);
    if (sequence === session.lastSequence && session.reply !== undefined) return { kind: 'duplicate', reply: session.reply };
    if (sequence <= session.lastSequence) return { kind: 'stale', lastSequence: session.lastSequence };
    return { kind: 'new' };
  }

  /** The command `sequence` of a session that `check` found new has executed with `reply`. */
  record(id: number, sequence: number, reply: Reply): void {
    const session = this.sessions.get(id);
    if (session === undefined || sequence <= session.lastSequence) {
      throw new Error(`session ${id}: recording ${sequence} that was not checked as new`);
    }
    session.lastSequence = sequence;
    session.reply = reply;
  }

  /** A copy of the state for a snapshot (records copied: the live ones keep changing). */
  capture(): SessionTableState<Reply> {
    return {
      nextId: this.nextId,
      logTime: this.logTime,
      sessions: Array.from(this.sessions.values(), (session) => ({ ...session })),
    };
  }

  /** Replace the table with a snapshot's (checked by its decoder). */
  restore(state: SessionTableState<Reply>): void {
    const sessions = new Map<number, SessionRecord<Reply>>();
    for (const session of state.sessions) {
      if (session.id >= state.nextId || sessions.has(session.id)) {
        throw new RangeError(`session ${session.id} in a table whose next id is ${state.nextId}, or twice`);
      }
      sessions.set(session.id, { ...session });
    }
    this.sessions = sessions;
    this.nextId = state.nextId;
    this.logTime = state.logTime;
  }

  private advance(at: number): void {
    if (at <= this.logTime) return;
    // The first stamp sets the log time; later ones move it by at most a step, so one master whose
    // clock is far ahead cannot expire every session at once, nor stall expiry afterwards (while the
    // other masters' clocks catch up with a log time in their future). Computed from the log alone.
    this.logTime = this.logTime === 0 ? at : Math.min(at, this.logTime + MAX_LOG_TIME_STEP_MS);
  }

  /** Every expired session, in the table's order (so alike on every node): O(sessions), only when full. */
  private dropAllExpired(): void {
    for (const session of this.sessions.values()) {
      if (this.logTime - session.lastActiveAt > session.ttlMs) this.sessions.delete(session.id);
    }
  }

  /** The oldest sessions, as long as they have expired: they need not wait for the table to fill. */
  private dropExpiredOldest(): void {
    for (const session of this.sessions.values()) {
      if (this.logTime - session.lastActiveAt <= session.ttlMs) return;
      this.sessions.delete(session.id);
    }
  }
}
