/**
 * A plain HTTP request waits, within its own deadline, for its group to have a master it can
 * reach, instead of failing at once. A caller behind a load balancer has no KvClient to follow
 * masters: a put that lands during an election, on a node that has not yet learned who won, or
 * just as the master it was forwarded to dies, would otherwise get a 503 although a master will
 * answer a few hundred milliseconds later (a write to etcd waits for a leader in the same way).
 *
 * Only refusals that certainly changed nothing are tried again: NO_MASTER, NOT_MASTER (a master
 * not yet reachable, or one that had just lost its tenure when the forward reached it) and
 * UNAVAILABLE, each with mayHaveBeenApplied false, whether raised here or answered by the master
 * a request was forwarded to. So a retried write is applied at most once, and the answer stays
 * honest: a later attempt that may have applied it says so. Everything else (a TIMEOUT, OVERLOADED,
 * a full disk here, a version conflict) is the answer at once.
 *
 * Requests that follow masters themselves (KvClient's NO_FORWARD_HEADER) and forwarded ones
 * (the forwarding node waits, not the master) are not held: they get the refusal at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError } from './kv-error.js';
import { RawJson, type Reply } from './http-reply.js';

/** The first pause before trying again, doubled after each refusal up to the last. */
export const FIRST_PAUSE_MS = 20;
export const LAST_PAUSE_MS = 250;
/** Not worth trying again with less than this left: the last refusal is the answer. */
export const MIN_ATTEMPT_MS = 50;

const RETRIED_CODES: ReadonlySet<string> = new Set(['NO_MASTER', 'NOT_MASTER', 'UNAVAILABLE']);

export interface MasterWait {
  /** When the request arrived (performance.now()), and how long its caller gives it. */
  readonly began: number;
  readonly timeoutMs: number;
  /** The caller went away: stop waiting. */
  readonly signal: AbortSignal | undefined;
  /** Called before each new attempt (counted in the metrics). */
  readonly onRetry: () => void;
}

/**
 * `attempt(remainingMs)` until it gives an answer other than a retried refusal (thrown, or an
 * answer `isRefusal` names, such as a master's refusal passed on: isRetriedReply), or the deadline
 * leaves no room for another try; then that answer, thrown or returned, is the request's.
 */
export async function untilMasterAnswers<T>(
  wait: MasterWait, attempt: (remainingMs: number) => Promise<T>,
  isRefusal: (answer: T) => boolean = () => false,
): Promise<T> {
  let pauseMs = FIRST_PAUSE_MS;
  for (;;) {
    const remainingMs = Math.max(1, wait.timeoutMs - (performance.now() - wait.began));
    let answer: T;
    try {
      answer = await attempt(remainingMs);
    } catch (error) {
      if (!isRetriedRefusal(error) || !(await pausedForAnother(wait, pauseMs))) throw error;
      pauseMs = Math.min(LAST_PAUSE_MS, pauseMs * 2);
      continue;
    }
    if (!isRefusal(answer) || !(await pausedForAnother(wait, pauseMs))) return answer;
    pauseMs = Math.min(LAST_PAUSE_MS, pauseMs * 2);
  }
}

/** Pauses and says true when another attempt fits before the deadline; false (at once) when not. */
async function pausedForAnother(wait: MasterWait, pauseMs: number): Promise<boolean> {
  const left = wait.timeoutMs - (performance.now() - wait.began);
  if (left - pauseMs < MIN_ATTEMPT_MS || wait.signal?.aborted === true) return false;
  try {
    await sleep(pauseMs, undefined, wait.signal === undefined ? undefined : { signal: wait.signal });
  } catch {
    return false; // the caller went away
  }
  wait.onRetry();
  return true;
}

export function isRetriedRefusal(error: unknown): boolean {
  return error instanceof KvError && !error.mayHaveBeenApplied && RETRIED_CODES.has(error.code);
}

/** A master's refusal passed on as it answered a forwarded request (a 503 with the error's JSON). */
export function isRetriedReply(reply: Reply): boolean {
  if (reply.status !== 503 || !(reply.body instanceof RawJson)) return false;
  let body: unknown;
  try {
    body = JSON.parse(reply.body.bytes.toString('utf8'));
  } catch {
    return false;
  }
  if (typeof body !== 'object' || body === null) return false;
  const { error, mayHaveBeenApplied } = body as { error?: unknown; mayHaveBeenApplied?: unknown };
  return typeof error === 'string' && RETRIED_CODES.has(error) && mayHaveBeenApplied === false;
}
