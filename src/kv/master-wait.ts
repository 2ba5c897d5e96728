/**
 * A plain HTTP request waits, within its own deadline, for its group to have a master it can
 * reach, instead of failing at once. A caller behind a load balancer has no KvClient to follow
 * masters: a put that lands during an election, on a node that has not yet learned who won, or
 * just as the master it was forwarded to dies, would otherwise get a 503 although a master will
 * answer a few hundred milliseconds later (a write to etcd waits for a leader in the same way).
 *
 * Only refusals that certainly changed nothing are tried again (mayHaveBeenApplied false):
 * NO_MASTER and NOT_MASTER (a master not yet reachable, or one that had just lost its tenure when
 * the forward reached it), raised here or answered by the master a request was forwarded to; and
 * UNAVAILABLE when the forward could not connect (the master's process is gone: the next master
 * comes within a lease). So a retried write is applied at most once, and the answer stays honest:
 * a later attempt that may have applied it says so. Everything else is the answer at once: a
 * TIMEOUT, OVERLOADED, a full disk here, a version conflict, a forward refused for a master that
 * went silent lately (so that callers do not each wait on it, see http-forward.ts) or refused for
 * good (credentials over plain HTTP).
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

const NO_REACHABLE_MASTER: ReadonlySet<string> = new Set(['NO_MASTER', 'NOT_MASTER']);

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
  if (!(error instanceof KvError) || error.mayHaveBeenApplied) return false;
  return NO_REACHABLE_MASTER.has(error.code) || (error.code === 'UNAVAILABLE' && isConnectionFailure(error.cause));
}

/** A system error of a socket (ECONNREFUSED, ECONNRESET, ...), as a forward that could not connect has. */
function isConnectionFailure(cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return cause instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code);
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
  return typeof error === 'string' && NO_REACHABLE_MASTER.has(error) && mayHaveBeenApplied === false;
}
