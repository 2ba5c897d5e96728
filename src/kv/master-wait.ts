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
 * UNAVAILABLE when the forward found nothing listening at the master's address or lost its
 * transport connection to it before a read's reply (its process is gone: the next master comes within a
 * lease; a master whose host is lost or cut off is not this case, its forward ends in TIMEOUT).
 * So a retried write is applied at most once, and the answer stays honest: a later attempt that
 * may have applied it says so. Everything else is the answer at once: a
 * TIMEOUT, OVERLOADED, a full disk here, a version conflict, a forward refused for a master that
 * went silent lately (so that callers do not each wait on it, see http-forward.ts) or refused for
 * good (credentials over plain HTTP). Except for reads, which change nothing: a read's forward
 * waits one attempt's time for its master (READ_ATTEMPT_MS), and its TIMEOUT, the master's own
 * 504 TIMEOUT and the refusal to forward to a silent master are tried again too, so that a frozen
 * or cut-off master, still named by the others until its lease runs out, does not take the read's
 * whole deadline.
 *
 * Requests that follow masters themselves (KvClient's NO_FORWARD_HEADER) and forwarded ones
 * (the forwarding node waits, not the master) are not held: they get the refusal at once. Nor is
 * a request whose group has been without a master here for longer than a lease (`hopeless`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError } from './kv-error.js';
import { RawJson, type Reply } from './http-reply.js';
import { PEER_CONNECTION_LOST } from './peer-forward.js';
import { MASTER_SILENT } from './http-forward.js';

/** The first pause before trying again, doubled after each refusal up to the last (each ±50%). */
export const FIRST_PAUSE_MS = 20;
export const LAST_PAUSE_MS = 250;
/**
 * Not worth trying again with less than this left after the pause: the last refusal is the answer.
 * An attempt started with less would turn a clean refusal into a TIMEOUT that may have applied.
 */
export const MIN_ATTEMPT_MS = 200;
/**
 * A plain read forwarded to its master waits at most this long for that master before it is
 * tried again, as KvClient's attempts do: a master frozen (SIGSTOP, a stalled VM) or cut off
 * stays named by the others until its lease runs out, and a read that waited on it for its whole
 * deadline got TIMEOUT although the next master answers within a lease. A read changes nothing,
 * so its attempt's TIMEOUT, and the refusal to forward to a master that went silent meanwhile, are
 * tried again (see isRetriedRefusal). The last attempt that fits gets all the time left.
 */
export const READ_ATTEMPT_MS = 1_000;

const NO_REACHABLE_MASTER: ReadonlySet<string> = new Set(['NO_MASTER', 'NOT_MASTER']);

export interface MasterWait {
  /** When the request arrived (performance.now()), and how long its caller gives it. */
  readonly began: number;
  readonly timeoutMs: number;
  /** The caller went away: stop waiting. */
  readonly signal: AbortSignal | undefined;
  /** Called before each new attempt (counted in the metrics). */
  readonly onRetry: () => void;
  /** A read: a TIMEOUT of an attempt, and a forward held back from a silent master, are retried too. */
  readonly readOnly?: boolean;
  /**
   * True when waiting longer is pointless although the deadline allows it: the group has had no
   * master here for longer than an election takes (a minority side of a partition, no quorum),
   * so the refusal is answered at once, for a load balancer to try elsewhere.
   */
  readonly hopeless?: () => boolean;
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
      if (!isRetriedRefusal(error, wait.readOnly === true) || !(await pausedForAnother(wait, pauseMs))) throw error;
      pauseMs = Math.min(LAST_PAUSE_MS, pauseMs * 2);
      continue;
    }
    if (!isRefusal(answer) || !(await pausedForAnother(wait, pauseMs))) return answer;
    pauseMs = Math.min(LAST_PAUSE_MS, pauseMs * 2);
  }
}

/** Pauses and says true when another attempt fits before the deadline; false (at once) when not. */
async function pausedForAnother(wait: MasterWait, pauseMs: number): Promise<boolean> {
  // Jittered, so that the requests held by one election do not all come back at once.
  const pause = pauseMs * (0.5 + Math.random());
  const left = wait.timeoutMs - (performance.now() - wait.began);
  if (left - pause < MIN_ATTEMPT_MS || wait.signal?.aborted === true || wait.hopeless?.() === true) return false;
  try {
    await sleep(pause, undefined, wait.signal === undefined ? undefined : { signal: wait.signal });
  } catch {
    return false; // the caller went away
  }
  wait.onRetry();
  return true;
}

export function isRetriedRefusal(error: unknown, readOnly = false): boolean {
  if (!(error instanceof KvError) || error.mayHaveBeenApplied) return false;
  if (NO_REACHABLE_MASTER.has(error.code) || (error.code === 'UNAVAILABLE' && isConnectionFailure(error.cause))) {
    return true;
  }
  // A read that the master did not answer in its attempt's time, or that was not sent to a master
  // that went silent lately: the master may be frozen, and the next one comes within a lease.
  return readOnly && (error.code === 'TIMEOUT' || (error.code === 'UNAVAILABLE' && codeOf(error.cause) === MASTER_SILENT));
}

/**
 * How long a plain read's forward may wait for the master, given `remainingMs` of its deadline:
 * READ_ATTEMPT_MS, or everything left when no other attempt would fit after it.
 */
export function readAttemptMs(remainingMs: number): number {
  // Room for the longest pause (LAST_PAUSE_MS jittered up by half) and a last attempt after it.
  return remainingMs - READ_ATTEMPT_MS < MIN_ATTEMPT_MS + 1.5 * LAST_PAUSE_MS + 50 ? remainingMs : READ_ATTEMPT_MS;
}

/**
 * The forward found nothing listening at the master's address, or its connection to the master
 * closed before the reply: the master's process is gone, and the next master comes within a lease
 * (a write whose connection closed after it was sent may have been applied, and is never retried:
 * only refusals with mayHaveBeenApplied false get here). Other socket errors are answered: a wrong
 * address or protocol does not mend.
 */
function isConnectionFailure(cause: unknown): boolean {
  const code = codeOf(cause);
  return code === 'ECONNREFUSED' || code === PEER_CONNECTION_LOST;
}

function codeOf(cause: unknown): string | undefined {
  return cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
}

/**
 * A master's refusal passed on as it answered a forwarded request (a 503 with the error's JSON):
 * NO_MASTER, NOT_MASTER, or UNAVAILABLE from a master still starting after a restart (every node
 * would forward there, so waiting for the next master is the way out), each not applied. For a
 * read also the master's own 504 TIMEOUT (it honours the short time a read's attempt gives it, as
 * a master setting up its fence after an election may need more): it is asked again.
 */
export function isRetriedReply(reply: Reply, readOnly = false): boolean {
  if (readOnly && reply.status === 504) return passedOnCode(reply) === 'TIMEOUT';
  if (reply.status !== 503) return false;
  const error = passedOnCode(reply);
  return error !== undefined && (NO_REACHABLE_MASTER.has(error) || error === 'UNAVAILABLE');
}

/** The code of a refusal passed on as JSON that says it changed nothing; undefined otherwise. */
function passedOnCode(reply: Reply): string | undefined {
  if (!(reply.body instanceof RawJson)) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(reply.body.bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, mayHaveBeenApplied } = body as { error?: unknown; mayHaveBeenApplied?: unknown };
  return typeof error === 'string' && mayHaveBeenApplied === false ? error : undefined;
}
