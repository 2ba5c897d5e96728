/**
 * The KV client's sessions (exactly-once writes): per group, the sessions this client opened and
 * that have no write outstanding. A session numbers its writes and has at most one outstanding (the
 * state machine remembers only each session's last reply), so concurrent writes to a group each take
 * a session of their own from the pool, opening one when none is idle, and give it back when done.
 */

export interface ClientSession {
  /** As POST /v1/sessions answered it: "<group>.<id>". */
  readonly token: string;
  readonly group: number;
  /** The number of the next write. */
  nextSequence: number;
}

/** Idle sessions kept per group at most; more are let go (they expire on the servers). */
const MAX_IDLE_PER_GROUP = 256;

export class SessionPool {
  private readonly idle = new Map<number, ClientSession[]>();

  /** An idle session of the group, now taken (undefined: none). */
  take(group: number): ClientSession | undefined {
    return this.idle.get(group)?.pop();
  }

  /** The session's write is done (whatever its outcome): its next write takes the next number. */
  giveBack(session: ClientSession): void {
    const sessions = this.idle.get(session.group) ?? [];
    if (sessions.length < MAX_IDLE_PER_GROUP) sessions.push(session);
    this.idle.set(session.group, sessions);
  }

  /** Parses POST /v1/sessions's answer; undefined when it is not one. */
  static fromAnswer(body: Record<string, unknown>): ClientSession | undefined {
    const { group, session } = body;
    if (typeof group !== 'number' || typeof session !== 'string' || session.split('.')[0] !== String(group)) {
      return undefined;
    }
    return { token: session, group, nextSequence: 1 };
  }
}
