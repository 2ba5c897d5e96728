/**
 * The one error class of the public API. Match on `code`, which is stable; the message is for
 * people. For proposals, `mayBeChosen` says whether the value could still be (or already is)
 * chosen: false means it certainly was not.
 */
export type PaxosErrorCode =
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'OVERLOADED'
  | 'NOT_MEMBER'
  | 'MEMBERSHIP_CONFLICT'
  | 'FOLLOWER_CANNOT_PROPOSE'
  | 'VALUE_TOO_LARGE'
  | 'EXECUTE_FAILED'
  | 'GROUP_HALTED'
  | 'DIVERGED'
  | 'STOPPED'
  | 'ABORTED'
  | 'BAD_OPTIONS'
  | 'INVALID_GROUP'
  | 'INSTANCE_UNAVAILABLE'
  | 'STARTUP_FAILED'
  | 'STORAGE_CORRUPT';

const RETRYABLE: ReadonlySet<PaxosErrorCode> = new Set<PaxosErrorCode>(['CONFLICT', 'TIMEOUT', 'OVERLOADED']);

const BRAND = Symbol.for('multipaxos.PaxosError');

export interface PaxosErrorOptions {
  readonly mayBeChosen?: boolean;
  readonly cause?: unknown;
}

export class PaxosError extends Error {
  readonly code: PaxosErrorCode;
  /** Whether retrying the same call may succeed. */
  readonly retryable: boolean;
  /** For proposals: false only when the value was certainly not chosen. */
  readonly mayBeChosen: boolean;

  constructor(code: PaxosErrorCode, message: string, options: PaxosErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PaxosError';
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.mayBeChosen = options.mayBeChosen ?? false;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export function isRetryable(code: PaxosErrorCode): boolean {
  return RETRYABLE.has(code);
}
