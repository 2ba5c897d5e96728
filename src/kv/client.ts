/**
 * The KV client (`multipaxos/kv`): talks to the HTTP API of any nodes of a cluster.
 *
 *   const kv = new KvClient({ endpoints: ['http://127.0.0.1:8081', 'http://127.0.0.1:8082'] });
 *   const { version } = await kv.put('a', 'hello');
 *   const { value } = await kv.get('a');           // linearizable, on the master
 *   await kv.put('a', 'again', { version });        // compare-and-set
 *
 * It follows the master: it learns each group's master endpoint from the answers (and from
 * NOT_MASTER) and sends the next request for that group there. Each attempt has its own timeout,
 * well below the call's deadline, so a master that stops answering (frozen, cut off) is noticed
 * within about a lease and routed around while the other nodes name the new one (see
 * client-routes.ts). It retries only what is safe: any read, and a write only when it certainly was
 * not applied (refused connection, NOT_MASTER, NO_MASTER, OVERLOADED) or when it goes through a
 * session.
 *
 * Sessions (on by default; `sessions: false` turns them off): each write goes as the next number
 * of a session of the key's group, opened through the log (client-sessions.ts). The state machine
 * applies a session's number at most once and answers a retry with the first answer, so a write
 * whose outcome is unknown (an attempt that timed out or was cut after it was sent, a master that
 * died mid-request) is sent again, with the same number, until the call's deadline: the caller sees
 * the write's own outcome, and `mayHaveBeenApplied: true` only when the deadline passes with the
 * outcome still unknown (or the session expired in between). Without sessions such a write fails
 * with `mayHaveBeenApplied: true` rather than being sent twice. Every call has a deadline
 * (`timeoutMs`) and takes an AbortSignal.
 */
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { mayCarryCredentials } from './cleartext-guard.js';
import { errorOf, isRefused, sendAttempt, type HttpReply } from './client-http.js';
import { MasterRoutes } from './client-routes.js';
import { SessionPool, type ClientSession } from './client-sessions.js';
import { KvWatch, type KvWatchConnection, type KvWatchKeyOptions, type KvWatchOptions } from './client-watch.js';
import { SEQUENCE_HEADER, SESSION_HEADER } from './http-headers.js';
import { LONE_SURROGATE } from './kv-command.js';
import { KvError, NOT_APPLIED, type KvErrorCode } from './kv-error.js';
import { MAX_SESSION_TTL_MS } from '../runtime/session-table.js';

export interface KvClientOptions {
  /** HTTP endpoints of some nodes of the cluster, like `http://127.0.0.1:8081`. */
  readonly endpoints: readonly string[];
  /** The default deadline of a call (10,000 ms). */
  readonly timeoutMs?: number;
  /**
   * How long one attempt waits for a node's answer (1,000 ms; never more than what is left of the
   * call's deadline). A healthy node answers within a Paxos round, and one without a master answers
   * NO_MASTER at once, so silence this long means the node is frozen, cut off or badly overloaded.
   * 1 s is the smallest lease a cluster can have: the client notices a silent master no later than
   * the cluster elects another, and is never the slow part of a failover. A read then moves on to
   * another node; a write that was sent fails as maybe applied. Raise it if your writes can
   * legitimately take longer (slow disks under heavy load).
   */
  readonly attemptTimeoutMs?: number;
  /** A bearer token (sent as `Authorization: Bearer TOKEN`) for nodes that require one. */
  readonly token?: string;
  /** For https:// endpoints: the CA (PEM) the nodes' certificates chain to, when not a public one. */
  readonly ca?: string | Buffer;
  /** For https:// endpoints that ask for a client certificate: its certificate and key (PEM). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /**
   * Exactly-once writes through sessions (default true): a write of unknown outcome is retried
   * with its session number until the deadline, never applied twice. false: such a write fails
   * at once with `mayHaveBeenApplied: true`, as before sessions (one round trip less per new session).
   */
  readonly sessions?: boolean;
  /** How long the client's sessions may stay idle before the cluster expires them (1 hour). */
  readonly sessionTtlMs?: number;
}

/** Internal: how a call treats its attempts. */
interface CallMode {
  readonly headers?: Readonly<Record<string, string>>;
  /** Every attempt is safe to repeat (a session write, a session's registration). */
  readonly repeatable?: boolean;
  /** An attempt applied more than once does no harm (a registration: an unused session expires). */
  readonly harmless?: boolean;
  /**
   * A session's write: SESSION_EXPIRED and STALE_SEQUENCE end the call, and whether the write may
   * have been applied is this call's own knowledge (did an attempt of unknown outcome go before?),
   * not the server's, which cannot tell a first copy from a retry.
   */
  readonly sessionWrite?: boolean;
}

export interface KvCallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KvPutOptions extends KvCallOptions {
  /** Apply only when the key is at this version (0: never written). */
  readonly version?: number;
}

export interface KvGetOptions extends KvCallOptions {
  /** Read whichever node answers, from its local state: fast, possibly behind. */
  readonly stale?: boolean;
}

export interface KvValue {
  readonly key: string;
  /** null when the key was never written or is deleted. */
  readonly value: string | null;
  readonly version: number;
}

export interface KvListOptions extends KvCallOptions {
  /** At most this many keys (1 to 1,000; default 100). */
  readonly limit?: number;
  /** Start after this key (the previous page's `next`). */
  readonly after?: string;
  readonly stale?: boolean;
}

export interface KvPage {
  readonly items: readonly KvValue[];
  readonly more: boolean;
  /** The `after` of the next page; null when this is the last. */
  readonly next: string | null;
}

export interface KvDeleted {
  readonly key: string;
  /** false: the key was not set, so nothing changed. */
  readonly deleted: boolean;
  /** The key's version after the call: the tombstone's, or (not deleted) its current one. */
  readonly version: number;
}

/**
 * How long a call waits before trying again while the cluster elects a master or sheds load. It
 * stays short (at most 200 ms) so that a waiting call notices the new master soon after the cluster
 * has one, at a handful of requests per second per waiting call.
 */
const BACKOFF_MS = [10, 25, 50, 100, 150, 200];
const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;

export class KvClient {
  private readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 512 });
  private readonly secureAgent: HttpsAgent;
  private readonly authorization: string | undefined;
  /** Some configured endpoint is https: a master announced at an http: endpoint is never followed. */
  private readonly httpsConfigured: boolean;
  private readonly routes: MasterRoutes;
  /** Suspect endpoints being probed with GET /status, so that each has one probe at a time. */
  private readonly probing = new Set<string>();
  private readonly sessions: SessionPool | undefined;
  private readonly sessionTtlMs: number | undefined;

  constructor(options: KvClientOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new KvError('BAD_REQUEST', 'a KvClient needs at least one endpoint', NOT_APPLIED);
    }
    this.endpoints = options.endpoints.map((endpoint) => normalizeEndpoint(endpoint));
    this.timeoutMs = checkedTimeout(options.timeoutMs ?? 10_000);
    this.attemptTimeoutMs = checkedTimeout(options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS);
    this.routes = new MasterRoutes(this.endpoints);
    if (options.token !== undefined && (typeof options.token !== 'string' || !/^[\x21-\x7e]+$/.test(options.token))) {
      throw new KvError('BAD_REQUEST', 'a token is a non-empty string of printable characters', NOT_APPLIED);
    }
    this.authorization = options.token === undefined ? undefined : `Bearer ${options.token}`;
    // A token crosses the network only inside TLS (plain HTTP to this machine's loopback aside).
    const cleartext = this.endpoints.find((endpoint) => !mayCarryCredentials(endpoint));
    if (this.authorization !== undefined && cleartext !== undefined) {
      throw new KvError('BAD_REQUEST', `not sending a token over plain HTTP to ${cleartext}: use https://`, NOT_APPLIED);
    }
    this.httpsConfigured = this.endpoints.some((endpoint) => endpoint.startsWith('https:'));
    this.secureAgent = new HttpsAgent({
      keepAlive: true, maxSockets: 512, ca: options.ca, cert: options.cert, key: options.key,
    });
    this.sessions = options.sessions === false ? undefined : new SessionPool();
    const ttl = options.sessionTtlMs;
    // Checked here against the servers' limit, rather than failing every write at its session's opening.
    if (ttl !== undefined && (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_SESSION_TTL_MS)) {
      throw new KvError('BAD_REQUEST', `sessionTtlMs is an integer from 1 to ${MAX_SESSION_TTL_MS} (a day), got ` +
        `${String(options.sessionTtlMs)}`, NOT_APPLIED);
    }
    this.sessionTtlMs = options.sessionTtlMs;
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<{ key: string; version: number }> {
    if (typeof value !== 'string') throw new KvError('BAD_REQUEST', 'a value is a string', NOT_APPLIED);
    const body = JSON.stringify(options.version === undefined ? { value } : { value, version: options.version });
    const reply = await this.write(key, 'PUT', kvPath(key), body, options);
    return { key, version: reply.body.version as number };
  }

  async get(key: string, options: KvGetOptions = {}): Promise<KvValue> {
    const path = `${kvPath(key)}${options.stale === true ? '?stale=true' : ''}`;
    try {
      const reply = await this.call(key, 'GET', path, undefined, options);
      return { key, value: reply.body.value as string, version: reply.body.version as number };
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return { key, value: null, version: error.version ?? 0 };
      throw error;
    }
  }

  /**
   * Delete a key. `deleted: false` when it was not set (never written, or deleted already): nothing
   * changed and `version` is its current one. With `version`, only if the key is at that version
   * (else VERSION_CONFLICT, checked first).
   */
  async delete(key: string, options: KvPutOptions = {}): Promise<KvDeleted> {
    const path = `${kvPath(key)}${options.version === undefined ? '' : `?version=${options.version}`}`;
    try {
      const reply = await this.write(key, 'DELETE', path, undefined, options);
      return { key, version: reply.body.version as number, deleted: true };
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return { key, version: error.version ?? 0, deleted: false };
      throw error;
    }
  }

  /**
   * A page of the keys that start with `prefix`, in order, with values and versions, after `after`
   * (exclusive); `next` is the `after` of the next page (null: none). Linearizable per group (each
   * group's part is read on its master at one instant); with `stale`, from one node's state.
   */
  async list(prefix = '', options: KvListOptions = {}): Promise<KvPage> {
    const query = new URLSearchParams({ prefix });
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.after !== undefined) query.set('after', options.after);
    if (options.stale === true) query.set('stale', 'true');
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    let endpoint = this.routes.nextEndpoint();
    for (let failures = 1; ; failures++) {
      let failure: KvError;
      try {
        const reply = await this.attempt(endpoint, 'GET', `/v1/kv?${query.toString()}`, undefined, deadline, options.signal);
        this.routes.answered(endpoint);
        if (reply.status === 200) {
          const { items, more, next } = reply.body as { items: KvValue[]; more: boolean; next: string | null };
          return { items, more, next };
        }
        failure = errorOf(reply, false);
        if (!isRetryable(failure, false)) throw failure;
      } catch (error) {
        if (!(error instanceof KvError) || error.code === 'ABORTED' || !isRetryable(error, false)) throw error;
        failure = error;
        this.routes.suspect(endpoint);
      }
      endpoint = this.routes.nextEndpoint(endpoint);
      await this.pause(failures, deadline, options.signal, failure);
    }
  }

  /** Every key that starts with `prefix` (after `after`), page after page (each page as `list` reads it). */
  async *scan(prefix = '', options: KvListOptions = {}): AsyncGenerator<KvValue> {
    let after = options.after;
    for (;;) {
      const page = await this.list(prefix, { ...options, after });
      yield* page.items;
      if (page.next === null) return;
      after = page.next;
    }
  }

  /**
   * The changes of the keys that start with `prefix` (every key by default), from now or after
   * `cursor`: an async iterator of events, each key's in version order, resumed on another node
   * after a disconnect with no change skipped or repeated (client-watch.ts). Throws KvWatchError
   * `compacted` or `dropped` when it cannot go on without a gap.
   */
  watch(prefix = '', options: KvWatchOptions = {}): KvWatch {
    return new KvWatch(this.endpoints, { prefix }, options, this.watchConnection());
  }

  /**
   * The changes of one key, like `watch`: from now, or from its change to `fromVersion + 1` (so
   * `get` then `watchKey(key, { fromVersion: version })` misses nothing in between).
   */
  watchKey(key: string, options: KvWatchKeyOptions = {}): KvWatch {
    const { fromVersion, ...rest } = options;
    return new KvWatch(this.endpoints, { key, fromVersion }, rest, this.watchConnection());
  }

  /** One node's /status (the first endpoint that answers, or the one given). */
  async status(endpoint?: string, options: KvCallOptions = {}): Promise<Record<string, unknown>> {
    const targets = endpoint === undefined ? this.endpoints : [normalizeEndpoint(endpoint)];
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    let last: unknown;
    for (const target of targets) {
      try {
        const reply = await this.attempt(target, 'GET', '/status', undefined, deadline, options.signal);
        if (reply.status === 200) return reply.body;
        last = errorOf(reply, false);
      } catch (error) {
        last = error;
      }
    }
    throw last instanceof KvError ? last : new KvError('UNAVAILABLE', `no endpoint answered: ${String(last)}`, NOT_APPLIED);
  }

  private watchConnection(): KvWatchConnection {
    return { secureAgent: this.secureAgent, authorization: this.authorization };
  }

  close(): void {
    this.agent.destroy();
    this.secureAgent.destroy();
  }

  /**
   * A write, through a session of the key's group when sessions are on. A session that expired
   * before any attempt could have applied the write is replaced and the write sent again (it was
   * certainly not applied); after an attempt of unknown outcome, the expiry is the answer, and the
   * write may have been applied.
   */
  private async write(
    key: string, method: string, path: string, body: string | undefined, options: KvCallOptions,
  ): Promise<HttpReply> {
    if (this.sessions === undefined) return await this.call(key, method, path, body, options);
    if (typeof key !== 'string' || key.length === 0) throw new KvError('BAD_REQUEST', 'a key is a non-empty string', NOT_APPLIED);
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    for (let opened = 0; ; opened++) {
      const session = await this.takeSession(key, deadline, options.signal);
      const sequence = session.nextSequence;
      const headers = { [SESSION_HEADER]: session.token, [SEQUENCE_HEADER]: String(sequence) };
      const left = Math.max(1, deadline - performance.now());
      let reply: HttpReply;
      try {
        const mode = { headers, repeatable: true, sessionWrite: true };
        reply = await this.call(key, method, path, body, { ...options, timeoutMs: left }, mode);
      } catch (error) {
        if (error instanceof KvError && error.code === 'SESSION_EXPIRED') {
          // Not given back: it is gone on the servers.
          if (error.mayHaveBeenApplied || opened > 0) throw error;
          continue;
        }
        // Not given back either: its numbers are out of step with the servers' (its last is later).
        if (error instanceof KvError && error.code === 'STALE_SEQUENCE') throw error;
        session.nextSequence = sequence + 1;
        this.sessions.giveBack(session);
        throw error;
      }
      session.nextSequence = sequence + 1;
      this.sessions.giveBack(session);
      return reply;
    }
  }

  /** An idle session of the key's group, or a new one opened through the log (POST /v1/sessions). */
  private async takeSession(key: string, deadline: number, signal: AbortSignal | undefined): Promise<ClientSession> {
    const pool = this.sessions as SessionPool;
    const group = this.routes.groupOf(key);
    const idle = group === undefined ? undefined : pool.take(group);
    if (idle !== undefined) return idle;
    const body = this.sessionTtlMs === undefined ? undefined : JSON.stringify({ ttlMs: this.sessionTtlMs });
    const path = `/v1/sessions?key=${encodeURIComponent(key)}`;
    let reply: HttpReply;
    try {
      reply = await this.call(key, 'POST', path, body, { timeoutMs: Math.max(1, deadline - performance.now()), signal },
        { repeatable: true, harmless: true });
    } catch (error) {
      // The write itself was not sent yet, whatever happened to the registration.
      const failure = error as KvError;
      if (failure.code === 'NOT_FOUND' || failure.code === 'METHOD_NOT_ALLOWED') {
        // A server of a version before sessions has no POST /v1/sessions. Not falling back to
        // writes without sessions: the caller asked for exactly-once writes.
        throw new KvError(failure.code, 'the server does not support sessions (a version before them): upgrade ' +
          'every node, or create the client with sessions: false; the write was not sent', { ...NOT_APPLIED, cause: error });
      }
      throw new KvError(failure.code, `opening a session: ${failure.message}; the write was not sent`,
        { ...NOT_APPLIED, master: failure.master, cause: error });
    }
    const session = SessionPool.fromAnswer(reply.body);
    if (session === undefined) {
      throw new KvError('INTERNAL', `POST /v1/sessions answered ${JSON.stringify(reply.body)}; the write was not sent`, NOT_APPLIED);
    }
    return session;
  }

  private async call(
    key: string, method: string, path: string, body: string | undefined, options: KvCallOptions, mode: CallMode = {},
  ): Promise<HttpReply> {
    if (typeof key !== 'string' || key.length === 0) throw new KvError('BAD_REQUEST', 'a key is a non-empty string', NOT_APPLIED);
    const isWrite = method !== 'GET';
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    const { signal } = options;
    /** An attempt of this call may have been applied: a failure now must say so. */
    let unknown = false;
    // Through a session, the state machine's own refusal is the outcome of the write's number,
    // whichever attempt it answers (the first answer is stored and given again to every retry).
    const settle = (failure: KvError): KvError => {
      if (mode.sessionWrite === true && isSessionRefusal(failure)) return sessionRefusal(failure, unknown);
      return !unknown || failure.mayHaveBeenApplied || mode.harmless === true ||
        (mode.repeatable === true && (failure.code === 'VERSION_CONFLICT' || failure.code === 'KEY_NOT_FOUND')) ? failure
        : new KvError(failure.code, `${failure.message} (an earlier attempt may have been applied)`,
          { mayHaveBeenApplied: true, version: failure.version, master: failure.master, cause: failure });
    };
    try {
      return await this.attempts(key, method, path, body, deadline, signal, mode, isWrite, () => { unknown = true; });
    } catch (error) {
      throw error instanceof KvError && isWrite ? settle(error) : error;
    }
  }

  private async attempts(
    key: string, method: string, path: string, body: string | undefined, deadline: number,
    signal: AbortSignal | undefined, mode: CallMode, isWrite: boolean, maybeApplied: () => void,
  ): Promise<HttpReply> {
    let failures = 0;
    let redirects = 0;
    /** Connections refused in a row: when every endpoint refuses twice over, the cluster is down. */
    let refusals = 0;
    let endpoint = this.routeFor(key);
    for (;;) {
      // (Checked here, so that a deadline that passed is never taken for a silent node.)
      if (deadline - performance.now() < 1) {
        throw new KvError('TIMEOUT', 'the deadline passed', NOT_APPLIED);
      }
      let reply: HttpReply;
      try {
        reply = await this.attempt(endpoint, method, path, body, deadline, signal, mode.headers);
      } catch (error) {
        const failure = error as KvError;
        if (failure.code === 'ABORTED') throw failure;
        // Silent, refused or cut off: later calls route around it until it answers again.
        this.routes.suspect(endpoint);
        // A write that may have been applied is never sent again (it could apply twice), unless
        // every attempt is safe to repeat (a session's number is applied once).
        if (isWrite && failure.mayHaveBeenApplied) {
          if (mode.repeatable !== true) throw failure;
          maybeApplied();
        }
        refusals = isRefused(failure) ? refusals + 1 : 0;
        if (refusals >= 2 * this.endpoints.length) {
          throw new KvError('UNAVAILABLE', `no endpoint accepts connections (${this.endpoints.join(', ')})`,
            { ...NOT_APPLIED, cause: failure });
        }
        endpoint = this.routes.nextEndpoint(endpoint);
        await this.pause(++failures, deadline, signal, failure);
        continue;
      }
      this.routes.answered(endpoint);
      refusals = 0;
      // A stale read may be answered by any node: it says nothing of who the master is.
      if (!path.includes('?stale=true')) this.routes.learn(key, reply, (named) => this.followable(named));
      if (reply.status >= 200 && reply.status < 300) return reply;
      const failure = errorOf(reply, isWrite);
      // The session's verdict on this number: final, whatever the answer says of its application.
      if (mode.sessionWrite === true && isSessionRefusal(failure)) throw failure;
      // Whatever the code, a write the answer says may have been applied is never sent again (but
      // through a session, where it is sent again to learn its outcome).
      if (isWrite && failure.mayHaveBeenApplied) {
        if (mode.repeatable !== true) throw failure;
        maybeApplied();
        this.routes.forgetMaster(key, endpoint);
        endpoint = this.routes.nextEndpoint(endpoint);
        await this.pause(++failures, deadline, signal, failure);
        continue;
      }
      const hinted = failure.code === 'NOT_MASTER' ? hintedEndpoint(failure) : undefined;
      const named = hinted !== undefined && this.isFollowable(hinted) ? hinted : undefined;
      if (named !== undefined) this.routes.setMaster(key, named);
      if (named !== undefined && !this.routes.isSuspect(named)) {
        endpoint = named;
        // Follow a redirect at once; if nodes keep pointing elsewhere, the cluster is changing: back off.
        await this.pause(++failures, deadline, signal, failure, redirects++ === 0 ? 0 : undefined);
        continue;
      }
      if (!isRetryable(failure, isWrite)) throw failure;
      if (failure.code !== 'OVERLOADED') {
        // This node cannot serve the key (no master, or it names one that went silent on us): ask
        // the next one, while a probe finds out whether the named master is back.
        if (named !== undefined) this.probe(named);
        this.routes.forgetMaster(key, endpoint);
        endpoint = this.routes.nextEndpoint(endpoint);
      }
      await this.pause(++failures, deadline, signal, failure);
    }
  }

  /** The key's master, or another endpoint while the master is suspect (probed meanwhile). */
  private routeFor(key: string): string {
    const master = this.routes.masterOf(key);
    if (master !== undefined && this.routes.isSuspect(master)) this.probe(master);
    return this.routes.endpointFor(key);
  }

  /**
   * Whether a suspect endpoint answers again, in the background: a GET /status is always safe to
   * send, so a master that was only slow for a moment is trusted again without risking a write on it.
   */
  private probe(endpoint: string): void {
    if (this.probing.has(endpoint)) return;
    this.probing.add(endpoint);
    const deadline = performance.now() + this.attemptTimeoutMs;
    this.attempt(endpoint, 'GET', '/status', undefined, deadline, undefined).then(
      () => this.routes.answered(endpoint),
      () => {},
    ).finally(() => this.probing.delete(endpoint));
  }

  private async pause(
    attempt: number, deadline: number, signal: AbortSignal | undefined, last: KvError, delayMs?: number,
  ): Promise<void> {
    const wait = delayMs ?? BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)] as number;
    if (performance.now() + wait >= deadline) {
      throw new KvError('TIMEOUT', `gave up before the deadline; last error: ${last.code}: ${last.message}`,
        { ...NOT_APPLIED, cause: last });
    }
    if (attempt > 1000) throw last;
    if (wait > 0) {
      await sleep(wait, undefined, { signal }).catch(() => {
        throw new KvError('ABORTED', 'the caller aborted', NOT_APPLIED);
      });
    }
  }

  /**
   * An endpoint a node announced (a master's), normalized, if this client may go there: never from
   * https down to http, and never a token over plain HTTP off this machine. Throws otherwise.
   */
  private followable(endpoint: string): string {
    const normalized = normalizeEndpoint(endpoint);
    if (!this.isFollowable(normalized)) throw new KvError('BAD_REQUEST', `not following ${normalized}`, NOT_APPLIED);
    return normalized;
  }

  private isFollowable(endpoint: string): boolean {
    if (this.httpsConfigured && !endpoint.startsWith('https:')) return false;
    return this.authorization === undefined || mayCarryCredentials(endpoint);
  }

  /** One request, given the attempt timeout or what is left of the call's deadline, whichever is shorter. */
  private attempt(
    endpoint: string, method: string, path: string, body: string | undefined, deadline: number,
    signal: AbortSignal | undefined, headers?: Readonly<Record<string, string>>,
  ): Promise<HttpReply> {
    const timeoutMs = Math.min(this.attemptTimeoutMs, Math.floor(deadline - performance.now()));
    if (this.authorization !== undefined && !mayCarryCredentials(endpoint)) {
      return Promise.reject(new KvError('BAD_REQUEST', `not sending a token over plain HTTP to ${endpoint}: use https://`,
        NOT_APPLIED));
    }
    const agent = endpoint.startsWith('https:') ? this.secureAgent : this.agent;
    return sendAttempt(agent, {
      endpoint, method, path, body, timeoutMs, signal, headers, authorization: this.authorization,
    });
  }
}

/**
 * Answers that leave the call free to ask again: every read's, and a write's that certainly was not
 * applied (an answer that does not say so, even NOT_MASTER, is taken as maybe applied).
 */
function isSessionRefusal(failure: KvError): boolean {
  return failure.code === 'SESSION_EXPIRED' || failure.code === 'STALE_SEQUENCE';
}

/**
 * A session's refusal of a write's number as the caller sees it: the refused copy was not applied,
 * so the write may have been only if an earlier attempt of this call may have been (`unknown`).
 */
function sessionRefusal(failure: KvError, unknown: boolean): KvError {
  const what = failure.code === 'SESSION_EXPIRED' ? 'the session expired (or was evicted)'
    : 'the session has a later number executed';
  const message = unknown
    ? `${what} before the write's outcome was known: an earlier attempt may have been applied`
    : `${what}: the write was not applied`;
  return new KvError(failure.code, `${message} (server: ${failure.message})`,
    { mayHaveBeenApplied: unknown, master: failure.master, cause: failure });
}

function isRetryable(failure: KvError, isWrite: boolean): boolean {
  if (isWrite && failure.mayHaveBeenApplied) return false;
  const code: KvErrorCode = failure.code;
  return code === 'NOT_MASTER' || code === 'NO_MASTER' || code === 'OVERLOADED' || code === 'UNAVAILABLE' ||
    code === 'STORAGE_UNAVAILABLE' || code === 'TIMEOUT';
}

function hintedEndpoint(failure: KvError): string | undefined {
  const endpoint = failure.master?.endpoint;
  if (endpoint === undefined) return undefined;
  try {
    return normalizeEndpoint(endpoint);
  } catch {
    return undefined;
  }
}

function checkedTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw new KvError('BAD_REQUEST', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`, NOT_APPLIED);
  }
  return timeoutMs;
}

function kvPath(key: string): string {
  if (LONE_SURROGATE.test(key)) throw new KvError('BAD_REQUEST', 'a key must be well-formed Unicode', NOT_APPLIED);
  return `/v1/kv/${encodeURIComponent(key)}`;
}

function normalizeEndpoint(endpoint: string): string {
  // Only an endpoint without a scheme gets http://: "ftp://host" is not the host "ftp".
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KvError('BAD_REQUEST', `not an endpoint: "${endpoint}" (expected http://host:port)`, NOT_APPLIED);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new KvError('BAD_REQUEST', `only http:// and https:// endpoints are supported: "${endpoint}"`, NOT_APPLIED);
  }
  return `${url.protocol}//${url.host}`;
}
