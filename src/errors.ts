/**
 * The one error class of the public API. Match on `code`, which is stable; the message is for
 * people. For proposals, `mayBeChosen` says whether the value could still be (or already is)
 * chosen: false means it certainly was not. It defaults to true, so a throw site that forgets to
 * say claims the safe answer; every site that knows nothing was (or will be) chosen says false.
 */
export type PaxosErrorCode =
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'OVERLOADED'
  | 'NOT_MEMBER'
  | 'MEMBERSHIP_CONFLICT'
  | 'ALREADY_MEMBER'
  | 'NO_SUCH_MEMBER'
  | 'LAST_MEMBER'
  | 'NOT_ELECTING'
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
  | 'STORAGE_CORRUPT'
  | 'STORAGE_UNAVAILABLE';

/**
 * The options of an error raised where the caller's value certainly was not, and will not be,
 * chosen: nothing was proposed, or another value won its instance.
 */
export const NOT_CHOSEN: PaxosErrorOptions = Object.freeze({ mayBeChosen: false });

const RETRYABLE: ReadonlySet<PaxosErrorCode> = new Set<PaxosErrorCode>(['CONFLICT', 'TIMEOUT', 'OVERLOADED']);

const BRAND = Symbol.for('multipaxos.PaxosError');

export interface PaxosErrorOptions {
  /** Default true: only a site that knows the value was certainly not chosen may say false. */
  readonly mayBeChosen?: boolean;
  readonly cause?: unknown;
}

export class PaxosError extends Error {
  readonly code: PaxosErrorCode;
  /**
   * Whether retrying the same call may succeed and is safe: never while the value may be chosen
   * (a retried TIMEOUT could then apply the value twice).
   */
  readonly retryable: boolean;
  /** For proposals: false only when the value was certainly not chosen. */
  readonly mayBeChosen: boolean;

  constructor(code: PaxosErrorCode, message: string, options: PaxosErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PaxosError';
    this.code = code;
    this.mayBeChosen = options.mayBeChosen ?? true;
    this.retryable = isRetryable(code, this.mayBeChosen);
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * Whether an error with this code and outcome may be retried as it is (see `PaxosError.retryable`).
 * The outcome must be given: a retryable code is safe to retry only when the value was certainly
 * not chosen.
 */
export function isRetryable(code: PaxosErrorCode, mayBeChosen: boolean): boolean {
  return RETRYABLE.has(code) && !mayBeChosen;
}

/**
 * Whether `error`, or an error it was caused by (a few levels down its `cause` chain), is a
 * PaxosError with `code`: a start-up or execution failure wraps the store's own refusal.
 */
export function hasErrorCode(error: unknown, code: PaxosErrorCode): boolean {
  let current = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof PaxosError && current.code === code) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
