/**
 * The errors of the KV service, shared by the server, the HTTP API and the client. `code` is
 * stable; `mayHaveBeenApplied` is the honest outcome of a write that failed: false means it
 * certainly was not applied (so retrying it is safe), true means it may have been. It defaults to
 * true, so a throw site that forgets to say claims the safe answer; every site that knows the write
 * was not applied says so with NOT_APPLIED. Reads change nothing: their errors say false.
 */
export type KvErrorCode =
  | 'BAD_REQUEST'
  | 'KEY_TOO_LARGE'
  | 'VALUE_TOO_LARGE'
  | 'VERSION_CONFLICT'
  | 'NOT_MASTER'
  | 'NO_MASTER'
  | 'TIMEOUT'
  | 'OVERLOADED'
  | 'UNAVAILABLE'
  | 'STORAGE_UNAVAILABLE'
  | 'ABORTED'
  | 'KEY_NOT_FOUND'
  | 'SESSION_EXPIRED'
  | 'STALE_SEQUENCE'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  /** No valid token (401): the request was not looked at. */
  | 'UNAUTHENTICATED'
  /** The token's role does not allow the request (403). */
  | 'FORBIDDEN'
  | 'INTERNAL';

/** Where a group's master can be reached, when a node knows. */
export interface MasterHint {
  readonly nodeId: number;
  /** Its HTTP endpoint (`http://host:port`), learned from the master's fence on the log. */
  readonly endpoint: string | undefined;
}

export interface KvErrorDetails {
  /** Default true: only a site that knows the write certainly was not applied (or a read) may say false. */
  readonly mayHaveBeenApplied?: boolean;
  /** VERSION_CONFLICT: the key's current version. */
  readonly version?: number;
  /** NOT_MASTER: who is. */
  readonly master?: MasterHint;
  /** VERSION_CONFLICT, KEY_NOT_FOUND: a session's retry, answered from the stored first answer. */
  readonly duplicate?: boolean;
  readonly cause?: unknown;
}

/**
 * The details of an error raised where the write certainly was not, and will not be, applied
 * (refused before it was proposed or sent, or refused by the state machine), and of every read's
 * error. Spread it to add more: `{ ...NOT_APPLIED, version }`.
 */
export const NOT_APPLIED: KvErrorDetails = Object.freeze({ mayHaveBeenApplied: false });

const HTTP_STATUS: Readonly<Record<KvErrorCode, number>> = {
  BAD_REQUEST: 400,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  KEY_NOT_FOUND: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  VERSION_CONFLICT: 409,
  STALE_SEQUENCE: 409,
  SESSION_EXPIRED: 410,
  OVERLOADED: 429,
  ABORTED: 499,
  INTERNAL: 500,
  NOT_MASTER: 503,
  NO_MASTER: 503,
  UNAVAILABLE: 503,
  // This node cannot write to its disk (full, read-only, failing): another node can serve the request.
  STORAGE_UNAVAILABLE: 503,
  TIMEOUT: 504,
};

export class KvError extends Error {
  readonly code: KvErrorCode;
  readonly mayHaveBeenApplied: boolean;
  readonly version: number | undefined;
  readonly master: MasterHint | undefined;
  /** A session's retry answered with the stored first answer (a refusal that settled the write). */
  readonly duplicate: boolean;

  constructor(code: KvErrorCode, message: string, details: KvErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'KvError';
    this.code = code;
    this.mayHaveBeenApplied = details.mayHaveBeenApplied ?? true;
    this.version = details.version;
    this.master = details.master;
    this.duplicate = details.duplicate === true;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  /** The JSON body the HTTP API answers with. */
  toJSON(): Record<string, unknown> {
    return {
      error: this.code,
      message: this.message,
      mayHaveBeenApplied: this.mayHaveBeenApplied,
      ...(this.version === undefined ? {} : { version: this.version }),
      ...(this.master === undefined ? {}
        : { master: { nodeId: this.master.nodeId, endpoint: this.master.endpoint ?? null } }),
      ...(this.duplicate ? { duplicate: true } : {}),
    };
  }
}

export function isKvErrorCode(value: unknown): value is KvErrorCode {
  return typeof value === 'string' && Object.hasOwn(HTTP_STATUS, value);
}
