/**
 * The KV service's HTTP/1.1 JSON API, on every node (curl-friendly):
 *
 *   PUT    /v1/kv/{key}          {"value": "...", "version": n}   → {"key", "version"}
 *   GET    /v1/kv/{key}[?stale=true]                              → {"key", "value", "version"}
 *   DELETE /v1/kv/{key}[?version=n]  or body {"version": n}        → {"key", "version"}
 *          (a key that is not set: 404 KEY_NOT_FOUND with its version; nothing changes)
 *   GET    /status                node, groups, instances, masters, members
 *   GET    /metrics               Prometheus text
 *   GET    / and /ui              the operator's status page (src/kv/ui/status-page.ts)
 *   GET    /v1/node-status        this node: status, log range, rates and events of the last minutes
 *   GET    /v1/cluster-status     every node's /v1/node-status, gathered here (src/kv/cluster-status.ts)
 *   /v1/members, /v1/master        membership and master election (see src/node/admin-api.ts)
 *   POST   /v1/snapshots[?group=G]  snapshot the group (every group) now → {"snapshots": [...]}
 *   GET    /v1/kv?prefix=P&limit=N&after=K[&stale=true]  keys in order with values and versions,
 *          merged over the groups (each group's part read on its master) → {"items", "more", "next"}
 *   POST   /v1/sessions?key=K | ?group=G   [{"ttlMs": n}]   → {"group", "session": "G.id", "ttlMs"}
 *          open a session (exactly-once writes) in the key's group; a PUT or DELETE then sends
 *          x-multipaxos-session: G.id and x-multipaxos-sequence: n (see http-headers.ts), and a
 *          retry with the same n answers as the first time ("duplicate": true) without applying again
 *   GET    /v1/watch?prefix=P[&cursor=C]   the prefix's changes as server-sent events (http-watch.ts)
 *
 * A request for a key whose group this node is not master of is forwarded to the master (one hop),
 * unless it asks not to be (KvClient follows the master itself): then it is answered NOT_MASTER.
 * Errors are `{"error": CODE, "message", "mayHaveBeenApplied", ...}` with the status of KvError.
 * The server listens before the node starts (so a node can announce its real endpoint in its
 * fences); until `attach` it answers UNAVAILABLE.
 *
 * Security (options `tls`, `tokens`, `openMonitoring`; docs/security.md): HTTPS with the given
 * certificate files (reloaded when they change), and bearer tokens (or client certificates) with
 * roles checked before a request is routed (http-auth.ts). A forwarded request carries the caller's
 * Authorization header, and the master authenticates it again; a caller authenticated by its
 * certificate has its role carried in FORWARDED_ROLE_HEADER, believed only from a node's
 * certificate. Forwarding never lends a node's own authority to a caller.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { answerAdminRequest, isAdminPath } from '../node/admin-api.js';
import type { Logger } from '../runtime/interfaces.js';
import { TlsFiles, type TlsFileOptions } from '../security/tls-files.js';
import { isRole, type Role, type TokenStore } from '../security/tokens.js';
import { nodeIdsOf, roleOf } from '../security/node-identity.js';
import type { TLSSocket } from 'node:tls';
import { authorizeCounted } from './http-auth.js';
import { isLoopbackHost } from './cleartext-guard.js';
import { connectionSignal } from './connection-signal.js';
import { Forwarder } from './http-forward.js';
import { MAX_REPLY_BODY_BYTES, PeerForwarder, type PeerReply } from './peer-forward.js';
import { isForwardMethod } from './peer-forward-codec.js';
import { serveForwardedRequest, type ForwardedRequestHost } from './peer-forward-server.js';
import {
  failureOf, failureReply, methodNotAllowed, outcomeOf, RawJson, RawText, sendReply, type Reply,
} from './http-reply.js';
import { serveWatch } from './http-watch.js';
import { isRetriedReply, readAttemptMs, untilMasterAnswers } from './master-wait.js';
import {
  FORWARDED_HEADER, FORWARDED_ROLE_HEADER, NO_FORWARD_HEADER, SEQUENCE_HEADER, SESSION_HEADER, TIMEOUT_HEADER,
} from './http-headers.js';
import {
  BodyBudget, booleanParameter, checkQuery, deleteVersion, keyOfPath, MAX_TIMEOUT_MS, parsePutBody, readBody,
  requestTargetOf, sessionOfRequest, sessionTtlOf, type RequestTarget,
} from './http-request.js';
import { ClusterStatus } from './cluster-status.js';
import { isKvErrorCode, KvError, NOT_APPLIED, type MasterHint } from './kv-error.js';
import { KvRequestMetrics, PrometheusWriter, renderNodeMetrics, renderProcessMetrics, type KvOperation } from './kv-metrics.js';
import type { KvService } from './kv-service.js';
import { nodeReport, readCounters } from './node-report.js';
import { SAMPLE_INTERVAL_MS, StatusHistory } from './status-history.js';
import { STATUS_PAGE_HTML } from './ui/status-page.js';

export interface KvHttpServerOptions {
  readonly host: string;
  /** 0 picks a free port; `endpoint` then tells which. */
  readonly port: number;
  /** How others reach this server when it differs from host:port (a proxy, NAT, 0.0.0.0). */
  readonly advertisedEndpoint?: string;
  /** The local IP address requests forwarded to the master leave from (default: the system chooses). */
  readonly localAddress?: string;
  /** Other nodes' HTTP endpoints by node id (kv serve --http-peers), for /v1/cluster-status. */
  readonly httpPeers?: ReadonlyMap<number, string>;
  /** Serve HTTPS with these files (reloaded when they change); the CA also verifies masters forwarded to. */
  readonly tls?: TlsFileOptions;
  /** Require a bearer token with a role for every request (see http-auth.ts). Default: no authentication. */
  readonly tokens?: TokenStore;
  /** With `tokens`: leave GET /status, /metrics and /v1/node-status open (for Prometheus scrapers). */
  readonly openMonitoring?: boolean;
  /** Where reloads of the TLS files (and failures to load them) are logged. */
  readonly logger?: Logger;
}

/** A DELETE body is at most {"version": n}. */
const MAX_DELETE_BODY_BYTES = 4096;
const MAX_CONNECTIONS = 4_096;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** More than this in bodies being received at once is refused with OVERLOADED (429). */
const MAX_BODY_BYTES_IN_FLIGHT = 256 * 1024 * 1024;

/** What forwarding needs of a request: how it was asked, and whether it may go over the transport. */
interface ForwardSource {
  readonly method: string;
  /** Path and query as received. */
  readonly rawUrl: string;
  readonly headers: IncomingHttpHeaders;
  readonly overTransport: boolean;
}

/** A key's GET, PUT or DELETE, from HTTP or from another node over the transport. */
interface KeyRequest extends ForwardSource {
  readonly key: string;
  readonly url: RequestTarget;
  readonly began: number;
  readonly timeoutMs: number;
  /** Fires when the HTTP client goes away; none over the transport (the asker does not cancel). */
  readonly signal: AbortSignal | undefined;
  readonly certificateCaller: Role | undefined;
  /** The body as UTF-8, at most `limit` bytes (default: a PUT's limit). */
  readonly readBody: (limit: number | undefined) => Promise<string>;
}

export class KvHttpServer {
  readonly endpoint: string;
  readonly requests = new KvRequestMetrics();
  private readonly server: Server;
  private readonly forwarder: Forwarder;
  /** Forwarding over the nodes' own connections, once attached to a node that has them. */
  private peers: PeerForwarder | undefined;
  private readonly tls: TlsFiles | undefined;
  private readonly tokens: TokenStore | undefined;
  private readonly openMonitoring: boolean;
  /** Bytes of request bodies being received, over all connections. */
  private readonly bodies = new BodyBudget(MAX_BODY_BYTES_IN_FLIGHT);
  private service: KvService | undefined;
  /** What commonHeaders and groupHeaders answer, once attached. */
  private answerHeaders: {
    readonly common: Readonly<Record<string, string>>;
    readonly groups: readonly Readonly<Record<string, string>>[];
  } | undefined;
  private readonly history = new StatusHistory(Date.now());
  private readonly cluster: ClusterStatus;
  private readonly logger: Logger | undefined;
  private sampler: ReturnType<typeof setInterval> | undefined;

  private constructor(server: Server, endpoint: string, options: KvHttpServerOptions, tls: TlsFiles | undefined) {
    this.server = server;
    this.endpoint = endpoint;
    this.tls = tls;
    this.tokens = options.tokens;
    this.openMonitoring = options.openMonitoring ?? false;
    this.logger = options.logger;
    this.forwarder = new Forwarder({
      localAddress: options.localAddress, tls: tls === undefined ? undefined : () => tls.current,
    });
    this.cluster = new ClusterStatus(
      (known) => nodeReport(this.attached(), this.endpoint, this.history, known), options.httpPeers ?? new Map(),
      { localAddress: options.localAddress, tls: tls === undefined ? undefined : () => tls.current });
  }

  static async listen(options: KvHttpServerOptions): Promise<KvHttpServer> {
    const created: { instance?: KvHttpServer } = {};
    const handler = (request: IncomingMessage, response: ServerResponse): void => {
      (created.instance as KvHttpServer).handle(request, response);
    };
    const tls = options.tls === undefined ? undefined : TlsFiles.open(options.tls, options.logger);
    let server: Server;
    if (tls === undefined) server = createServer(handler);
    else {
      const { ca, cert, key } = tls.current;
      // A client certificate is asked for, not required: one that chains to the CA may grant a role
      // (or, for a forwarding node, carry its caller's); without one a token is needed.
      const secure: HttpsServer = createHttpsServer({
        ca, cert, key, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false,
        // A TLS handshake not done within 10 s is dropped (Node's default, 120 s, lets a slow
        // opener hold connections; requestTimeout and headersTimeout only start after it).
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      }, handler);
      tls.onReload(({ material }) => secure.setSecureContext({ ca: material.ca, cert: material.cert,
        key: material.key, minVersion: 'TLSv1.2' }));
      server = secure as unknown as Server;
    }
    server.keepAliveTimeout = 30_000;
    // Bound what slow or idle clients can hold: a whole request within 60 s (a request's own
    // timeout is at most 60 s too), its headers within 10 s, and a bounded number of connections.
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      tls?.close();
      throw error;
    });
    const { port } = server.address() as AddressInfo;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const scheme = tls === undefined ? 'http' : 'https';
    created.instance = new KvHttpServer(server, options.advertisedEndpoint ?? `${scheme}://${host}:${port}`, options,
      tls);
    return created.instance;
  }

  /** Start serving the KV API with this node's service. */
  attach(service: KvService): void {
    this.service = service;
    const common = Object.freeze({
      'x-multipaxos-node': String(service.nodeId),
      'x-multipaxos-endpoint': this.endpoint,
      'x-multipaxos-groups': String(service.groups),
    });
    this.answerHeaders = {
      common,
      groups: Array.from({ length: service.groups },
        (_, group) => Object.freeze({ ...common, 'x-multipaxos-group': String(group) })),
    };
    const channel = service.node.applicationChannel;
    if (channel !== undefined) {
      const host: ForwardedRequestHost = {
        tokens: this.tokens, openMonitoring: this.openMonitoring, requests: this.requests, bodies: this.bodies,
        commonHeaders: () => this.commonHeaders(), keyRequest: (request, countAs) => this.keyRequest(request, countAs),
      };
      this.peers = new PeerForwarder(channel,
        (from, request, certified) => serveForwardedRequest(host, from, request, certified));
    }
    const sample = (): void => this.history.record(readCounters(service, this.requests, Date.now()));
    sample();
    this.sampler = setInterval(sample, SAMPLE_INTERVAL_MS);
    this.sampler.unref();
  }

  /**
   * Tell this server where another node's HTTP API is, for /v1/cluster-status (what `httpPeers`
   * does at start, for an embedder that learns the endpoints later, e.g. after listening on port 0).
   */
  knowPeer(nodeId: number, endpoint: string): void {
    this.cluster.learn(nodeId, endpoint);
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
    this.cluster.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    this.forwarder.close();
    this.peers?.close();
    this.tls?.close();
    this.tokens?.close();
    await closed;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const started = performance.now();
    let operation: KvOperation | undefined;
    // sendReply does not throw, and whatever else might is caught last: a rejection left unhandled
    // here would end the process.
    const unsendable = (error: unknown): void => this.logger?.error('the KV API could not write a reply', {
      method: request.method, error: error instanceof Error ? error.message : String(error) });
    this.route(request, response, (op) => { operation = op; }).then(
      (reply) => {
        const seconds = (performance.now() - started) / 1000;
        if (operation !== undefined) this.requests.record(operation, outcomeOf(reply), seconds);
        sendReply(response, reply, unsendable);
      },
      (error: unknown) => {
        const failure = failureOf(error, request.method !== 'GET', request.destroyed);
        const seconds = (performance.now() - started) / 1000;
        if (operation !== undefined) this.requests.record(operation, failure.code, seconds);
        // A stored refusal answered again counts as a duplicate, like a stored success.
        if (failure.duplicate) this.requests.duplicates++;
        sendReply(response, failureReply(failure, this.commonHeaders()), unsendable);
      },
    ).catch((error: unknown) => {
      response.destroy();
      unsendable(error);
    });
  }

  private async route(
    request: IncomingMessage, response: ServerResponse, countAs: (operation: KvOperation) => void,
  ): Promise<Reply> {
    const url = requestTargetOf(request.url ?? '/');
    // Authorized and routed on one path, the raw one (see rawPathOf): the URL parser's
    // normalisation of `..`, `%2e` and `\` must not make the two disagree.
    const path = rawPathOf(request, url);
    const began = performance.now();
    const method = request.method ?? 'GET';
    // The role of a caller authenticated by its client certificate, to be carried if forwarded.
    let certificateCaller: Role | undefined;
    if (this.tokens !== undefined) {
      const role = authorizeCounted(this.requests, this.tokens, request.headers.authorization,
        this.certificateRoleOf(request, path), method, path, this.openMonitoring);
      if (request.headers.authorization === undefined) certificateCaller = role;
    }
    if (path === '/status' || path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, 'GET, HEAD');
      checkQuery(url, []);
      return path === '/status' ? this.status() : this.metrics();
    }
    if (path === '/' || path === '/ui') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, 'GET, HEAD');
      return { status: 200, body: new RawText(STATUS_PAGE_HTML, 'text/html; charset=utf-8'), headers: PAGE_HEADERS };
    }
    if (path === '/v1/node-status' || path === '/v1/cluster-status') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, 'GET, HEAD');
      checkQuery(url, []);
      const body = path === '/v1/node-status'
        ? nodeReport(this.attached(), this.endpoint, this.history, this.cluster.knownEndpoints())
        : await this.cluster.gather();
      return { status: 200, body, headers: { ...this.commonHeaders(), 'cache-control': 'no-store' } };
    }
    if (isAdminPath(path)) return await answerAdminRequest(this.attached().node, request);
    if (path === '/v1/snapshots') return await this.snapshot(method, url);
    if (path === '/v1/kv') {
      countAs('list');
      return await this.list(request, response, url, method, began, certificateCaller);
    }
    if (path === '/v1/watch') {
      if (method !== 'GET') throw methodNotAllowed(method, path, 'GET');
      await serveWatch(this.attached(), request, response, url, timeoutOf(request), this.commonHeaders());
      return { status: 200, body: null };
    }
    if (path === '/v1/sessions') {
      countAs('session');
      return await this.openSession(request, response, url, method, began, certificateCaller);
    }
    const key = keyOfPath(path);
    if (key === undefined) {
      throw new KvError('NOT_FOUND', `no such path: ${path} (try /v1/kv/{key}, /status, /metrics or /ui)`, NOT_APPLIED);
    }
    return await this.keyRequest({
      key, method, url, rawUrl: request.url ?? '/', headers: request.headers, began, timeoutMs: timeoutOf(request),
      // The client going away ends what this request waits for (shared by the connection's requests).
      signal: connectionSignal(request.socket), certificateCaller,
      readBody: (limit) => readBody(request, this.bodies, limit), overTransport: true,
    }, countAs);
  }

  /**
   * GET, PUT or DELETE of one key, as HTTP received it or as another node forwarded it over the
   * transport (peer-forward-server.ts): the same checks, the same answers.
   */
  private async keyRequest(request: KeyRequest, countAs: (operation: KvOperation) => void): Promise<Reply> {
    const { key, method, url, signal } = request;
    const service = this.attached();
    const group = service.groupOf(key);
    const headers = this.groupHeaders(group);
    // Each attempt has what is left of the caller's time (see untilAnswered).
    const forwardable = (body: string | undefined, isWrite: boolean, timeoutMs: number) =>
      (error: unknown): Promise<Reply> => this.forwardOrThrow(error, request, body, timeoutMs, isWrite, signal,
        request.certificateCaller);
    // What this node would refuse with NOT_MASTER at once goes straight on to the master.
    const forwardAtOnce = (
      body: string | undefined, isWrite: boolean, timeoutMs: number,
    ): Promise<Reply> | undefined => {
      const master = service.forwardingTarget(key);
      return master === undefined ? undefined
        : this.forwardToMaster(master, request, body, timeoutMs, isWrite, signal, request.certificateCaller);
    };
    switch (method) {
      case 'GET': {
        countAs('get');
        checkQuery(url, ['stale']);
        const stale = booleanParameter(url, 'stale');
        return await this.untilAnswered(request, group, async (timeoutMs) => {
          // A forward waits for the master one attempt's time, not the whole deadline (master-wait.ts).
          const forwardMs = readAttemptMs(timeoutMs);
          const early = stale ? undefined : forwardAtOnce(undefined, false, forwardMs);
          if (early !== undefined) return await early;
          const record = await service.get(key, { stale, timeoutMs, signal })
            .catch(forwardable(undefined, false, forwardMs));
          if ('status' in record) return record;
          if (record.value === undefined) {
            throw new KvError('KEY_NOT_FOUND', `key "${key}" is not set`, { ...NOT_APPLIED, version: record.version });
          }
          const value = Buffer.from(record.value).toString('utf8');
          return { status: 200, body: { key, value, version: record.version }, headers };
        }, { readOnly: true });
      }
      case 'PUT': {
        countAs('put');
        checkQuery(url, []);
        const text = await request.readBody(undefined);
        const body = parsePutBody(text);
        const session = sessionOfRequest(request.headers, group);
        return await this.untilAnswered(request, group, async (timeoutMs) => {
          const early = forwardAtOnce(text, true, timeoutMs);
          if (early !== undefined) return await early;
          const written = await service.put(key, body.value, { version: body.version, timeoutMs, signal, session })
            .catch(forwardable(text, true, timeoutMs));
          return 'status' in written ? written : { status: 200, body: writtenBody(key, written, this.requests), headers };
        });
      }
      case 'DELETE': {
        countAs('delete');
        checkQuery(url, ['version']);
        const text = await request.readBody(MAX_DELETE_BODY_BYTES);
        const version = deleteVersion(url, text);
        const session = sessionOfRequest(request.headers, group);
        const forwardedBody = text.length === 0 ? undefined : text;
        return await this.untilAnswered(request, group, async (timeoutMs) => {
          const early = forwardAtOnce(forwardedBody, true, timeoutMs);
          if (early !== undefined) return await early;
          const deleted = await service.delete(key, { version, timeoutMs, signal, session })
            .catch(forwardable(forwardedBody, true, timeoutMs));
          return 'status' in deleted ? deleted : { status: 200, body: writtenBody(key, deleted, this.requests), headers };
        });
      }
      default:
        throw methodNotAllowed(method, url.pathname, 'GET, PUT, DELETE');
    }
  }

  /**
   * `attempt` with the time the caller has left; for a plain request, tried again while the group
   * has no master it can reach, within the caller's deadline (master-wait.ts). A request that
   * follows masters itself (KvClient) or was forwarded here is answered at once.
   */
  private async untilAnswered(
    request: Pick<KeyRequest, 'headers' | 'began' | 'timeoutMs' | 'signal'>, group: number,
    attempt: (timeoutMs: number) => Promise<Reply>, { readOnly = false } = {},
  ): Promise<Reply> {
    const isRefusal = (reply: Reply): boolean => isRetriedReply(reply, readOnly);
    return await this.waitingForMaster(request, group, attempt, isRefusal, { readOnly });
  }

  /** untilAnswered for any answer: `isRefusal` names the answers that are refusals to try again. */
  private async waitingForMaster<T>(
    request: Pick<KeyRequest, 'headers' | 'began' | 'timeoutMs' | 'signal'>, group: number,
    attempt: (timeoutMs: number) => Promise<T>, isRefusal: (answer: T) => boolean, { readOnly = false } = {},
  ): Promise<T> {
    if (request.headers[FORWARDED_HEADER] !== undefined || request.headers[NO_FORWARD_HEADER] !== undefined) {
      return await attempt(Math.max(1, request.timeoutMs - (performance.now() - request.began)));
    }
    const service = this.attached();
    return await untilMasterAnswers({
      began: request.began, timeoutMs: request.timeoutMs, signal: request.signal,
      onRetry: () => { this.requests.retriedForMaster++; },
      hopeless: () => service.masterlessForMs(group) > service.masterLeaseMs, readOnly,
    }, attempt, isRefusal);
  }

  /** A NOT_MASTER with the master's endpoint is forwarded there once; anything else is the answer. */
  private async forwardOrThrow(
    error: unknown, request: ForwardSource, body: string | undefined, timeoutMs: number, isWrite: boolean,
    signal: AbortSignal | undefined, certificateCaller: Role | undefined,
  ): Promise<Reply> {
    const master = error instanceof KvError && error.code === 'NOT_MASTER' ? error.master : undefined;
    const forwarded = master === undefined ? undefined
      : this.forwardToMaster(master, request, body, timeoutMs, isWrite, signal, certificateCaller);
    if (forwarded === undefined) throw error;
    return await forwarded;
  }

  /** The request forwarded to `master` once, or undefined when it may not be (one hop only, or itself). */
  private forwardToMaster(
    master: MasterHint, request: ForwardSource, body: string | undefined, timeoutMs: number, isWrite: boolean,
    signal: AbortSignal | undefined, certificateCaller: Role | undefined,
  ): Promise<Reply> | undefined {
    const endpoint = master.endpoint;
    const oneHopOnly = request.headers[FORWARDED_HEADER] !== undefined ||
      request.headers[NO_FORWARD_HEADER] !== undefined;
    if (endpoint === undefined || oneHopOnly || endpoint === this.endpoint) return undefined;
    return this.forwardNow(master, endpoint, request, body, timeoutMs, isWrite, signal, certificateCaller);
  }

  private async forwardNow(
    master: MasterHint, endpoint: string, request: ForwardSource, body: string | undefined, timeoutMs: number,
    isWrite: boolean, signal: AbortSignal | undefined, certificateCaller: Role | undefined,
  ): Promise<Reply> {
    this.requests.forwarded++;
    const headers: Record<string, string> = {};
    for (const name of [SESSION_HEADER, SEQUENCE_HEADER]) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const overTransport = request.overTransport
      ? this.forwardOverTransport(master.nodeId, request, body, timeoutMs, isWrite, signal, certificateCaller)
      : undefined;
    if (overTransport !== undefined) {
      this.requests.forwardedOverTransport++;
      const reply = await overTransport.catch((failure: unknown) => {
        // A master that let a write time out is held back from, over HTTP too (see http-forward.ts);
        // a read's attempt is short by design (master-wait.ts) and holds nothing back.
        if (failure instanceof KvError && failure.code === 'TIMEOUT' && isWrite) this.forwarder.silence(endpoint);
        throw failure;
      });
      // Undefined: a read whose reply was too large for a frame, asked again over HTTP below.
      if (reply !== undefined) {
        return { status: reply.status, body: new RawJson(reply.body), headers: forwardedHeaders(reply.headers) };
      }
    }
    const reply = await this.forwarder.forward({
      endpoint, method: request.method, path: request.rawUrl, body,
      authorization: request.headers.authorization, callerRole: certificateCaller,
      fromNodeId: this.attached().nodeId, timeoutMs, isWrite, signal, headers,
    });
    return { status: reply.status, body: new RawJson(reply.body), headers: forwardedHeaders(reply.headers) };
  }

  /**
   * The forward over the nodes' own connection, or undefined when it cannot take it (no such
   * channel, the peer unproven or unreachable, a body above MAX_REPLY_BODY_BYTES, or a request it
   * does not carry): then over HTTP. A caller's credentials go this way only where the bytes stay
   * private: between nodes whose transport is mutual TLS, or, without TLS, to a peer whose
   * transport connection is on this machine's loopback (decided on that connection's own
   * addresses, not on the master's HTTP endpoint); a node serving HTTPS never sends a request over
   * a transport without TLS.
   */
  private forwardOverTransport(
    masterId: number, request: ForwardSource, body: string | undefined, timeoutMs: number,
    isWrite: boolean, signal: AbortSignal | undefined, certificateCaller: Role | undefined,
  ): Promise<PeerReply | undefined> | undefined {
    const peers = this.peers;
    const channel = this.service?.node.applicationChannel;
    if (peers === undefined || channel === undefined || !isForwardMethod(request.method)) return undefined;
    // Large bodies would crowd out the Paxos messages sharing the connection's queue.
    if (body !== undefined && body.length > MAX_REPLY_BODY_BYTES) return undefined;
    const authorization = request.headers.authorization;
    const credentials = authorization !== undefined || certificateCaller !== undefined;
    if (!channel.certifiedPeers) {
      if (this.tls !== undefined) return undefined;
      if (credentials && !isLoopbackPeer(channel.peerHosts(masterId))) return undefined;
    }
    const session = request.headers[SESSION_HEADER];
    const sequence = request.headers[SEQUENCE_HEADER];
    // The master gets a little less time than we have, so that its own answer wins over our backstop.
    const masterTimeoutMs = Math.max(1, Math.floor(timeoutMs - Math.min(100, timeoutMs / 10)));
    return peers.forward(masterId, {
      timeoutMs: masterTimeoutMs, method: request.method, path: request.rawUrl, isWrite, signal,
      ...(authorization !== undefined ? { authorization }
        : certificateCaller !== undefined ? { callerRole: certificateCaller } : {}),
      ...(typeof session === 'string' ? { session } : {}),
      ...(typeof sequence === 'string' ? { sequence } : {}),
      ...(body !== undefined ? { body: Buffer.from(body, 'utf8') } : {}),
    }, Math.max(1, timeoutMs));
  }

  /**
   * The role the request's verified client certificate grants: its own (SAN URI
   * multipaxos:role:ROLE), or, when the certificate names a node of the cluster (a forwarding
   * node), the role that node says its caller has; a node asking for /v1/node-status on its own
   * behalf (gathering /v1/cluster-status) may read it. Undefined without TLS or a verified certificate.
   */
  private certificateRoleOf(request: IncomingMessage, path: string): Role | undefined {
    const socket = request.socket as TLSSocket;
    if (this.tls === undefined || socket.authorized !== true) return undefined;
    const certificate = socket.getPeerX509Certificate();
    const forwarded = request.headers[FORWARDED_ROLE_HEADER];
    if (nodeIdsOf(certificate).length > 0) {
      if (typeof forwarded === 'string') return isRole(forwarded) ? forwarded : undefined;
      return path === '/v1/node-status' ? 'read' : undefined;
    }
    return roleOf(certificate);
  }

  /**
   * A page of keys over every group (or one, `group=G`, as a node asks a group's master). Each
   * group's part is read on its master, here or fetched from it (one hop, whatever the client's
   * no-forward header says: the listing needs every group); the parts are merged in key order.
   */
  private async list(
    request: IncomingMessage, response: ServerResponse, url: RequestTarget, method: string, began: number,
    certificateCaller: Role | undefined,
  ): Promise<Reply> {
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, url.pathname, 'GET, HEAD');
    checkQuery(url, ['prefix', 'limit', 'after', 'stale', 'group']);
    const service = this.attached();
    const query = listQueryOf(url);
    const timeoutMs = timeoutOf(request);
    const abort = new AbortController();
    response.once('close', () => { if (!response.writableFinished) abort.abort(); });
    const options = { ...query, timeoutMs, signal: abort.signal };
    const rawGroup = url.searchParams.get('group');
    const groups = rawGroup === null ? Array.from({ length: service.groups }, (_, group) => group)
      : [groupOf(rawGroup)];
    // Each group's part waits for its master like a key's request (master-wait.ts).
    const wait = { headers: request.headers, began, timeoutMs, signal: abort.signal };
    const pages = await Promise.all(groups.map((group) => this.waitingForMaster(wait, group, async (remainingMs) => {
      try {
        const page = await service.list(group, { ...options, timeoutMs: remainingMs });
        return {
          items: page.records.map(({ key, value, version }) =>
            ({ key, value: Buffer.from(value as Uint8Array).toString('utf8'), version })),
          more: page.more,
        };
      } catch (error) {
        const endpoint = error instanceof KvError && error.code === 'NOT_MASTER' ? error.master?.endpoint : undefined;
        if (endpoint === undefined || endpoint === this.endpoint || request.headers[FORWARDED_HEADER] !== undefined) {
          throw error;
        }
        // One attempt's time for the master, as a key's read (master-wait.ts, READ_ATTEMPT_MS).
        return await this.fetchPage(endpoint, url, group, readAttemptMs(remainingMs), abort.signal, request,
          certificateCaller);
      }
    }, () => false, { readOnly: true }))).finally(() => {
      // One part's failure is the answer: the parts still waiting for their master stop.
      abort.abort();
    });
    const merged = pages.flatMap((page) => page.items).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const items = merged.slice(0, query.limit);
    const more = merged.length > query.limit || pages.some((page) => page.more);
    const next = more ? items[items.length - 1]?.key ?? null : null;
    return { status: 200, headers: this.commonHeaders(), body: { items, more, next } };
  }

  /** One group's page from its master. */
  private async fetchPage(
    endpoint: string, url: RequestTarget, group: number, timeoutMs: number, signal: AbortSignal,
    request: IncomingMessage, certificateCaller: Role | undefined,
  ): Promise<{ items: { key: string; value: string; version: number }[]; more: boolean }> {
    const query = new URLSearchParams(url.searchParams);
    query.set('group', String(group));
    this.requests.forwarded++;
    const reply = await this.forwarder.forward({
      endpoint, method: 'GET', path: `/v1/kv?${query.toString()}`, body: undefined,
      // The caller's credentials go along: the master checks them again (forwarding lends no authority).
      authorization: request.headers.authorization, callerRole: certificateCaller,
      fromNodeId: this.attached().nodeId, timeoutMs, isWrite: false, signal,
    });
    let body: { items?: unknown; more?: unknown; error?: unknown; message?: unknown };
    try {
      body = JSON.parse(reply.body.toString('utf8')) as typeof body;
    } catch {
      throw new KvError('UNAVAILABLE', `the master of group ${group} answered ${reply.status} without JSON`, NOT_APPLIED);
    }
    if (reply.status !== 200 || !Array.isArray(body.items)) {
      const code = isKvErrorCode(body.error) ? body.error : 'UNAVAILABLE';
      throw new KvError(code, `group ${group}: ${typeof body.message === 'string' ? body.message : reply.status}`,
        NOT_APPLIED);
    }
    return { items: body.items as { key: string; value: string; version: number }[], more: body.more === true };
  }

  /**
   * Open a session in the group of `key` (or `group`). Retrying a registration whose outcome is
   * unknown is harmless: a session opened and never used only expires.
   */
  private async openSession(
    request: IncomingMessage, response: ServerResponse, url: RequestTarget, method: string, began: number,
    certificateCaller: Role | undefined,
  ): Promise<Reply> {
    if (method !== 'POST') throw methodNotAllowed(method, url.pathname, 'POST');
    checkQuery(url, ['key', 'group']);
    const service = this.attached();
    const key = url.searchParams.get('key');
    const rawGroup = url.searchParams.get('group');
    if ((key === null) === (rawGroup === null)) throw new KvError('BAD_REQUEST', 'name either ?key= or ?group=', NOT_APPLIED);
    if (rawGroup !== null && !/^\d{1,9}$/.test(rawGroup)) throw new KvError('BAD_REQUEST', `group must be a number, not "${rawGroup}"`, NOT_APPLIED);
    const text = await readBody(request, this.bodies, MAX_DELETE_BODY_BYTES);
    const ttlMs = sessionTtlOf(text);
    const timeoutMs = timeoutOf(request);
    const abort = new AbortController();
    response.once('close', () => { if (!response.writableFinished) abort.abort(); });
    const source = { method: request.method ?? 'POST', rawUrl: request.url ?? '/', headers: request.headers, overTransport: false };
    const wait = { headers: request.headers, began, timeoutMs, signal: abort.signal };
    const group = key === null ? Number(rawGroup) : service.groupOf(key);
    return await this.untilAnswered(wait, group, async (remainingMs) => {
      const opened = await service.openSession(key === null ? { group: Number(rawGroup) } : { key },
        { ttlMs, timeoutMs: remainingMs, signal: abort.signal })
        .catch((error: unknown) => this.forwardOrThrow(error, source, text.length === 0 ? undefined : text,
          remainingMs, true, abort.signal, certificateCaller));
      if ('status' in opened) return opened;
      const headers = { ...this.commonHeaders(), 'x-multipaxos-group': String(opened.group) };
      return {
        status: 200, headers,
        body: { group: opened.group, session: `${opened.group}.${opened.session}`, ttlMs: opened.ttlMs },
      };
    });
  }

  /** An operator's request for snapshots now (`multipaxos snapshot create`); resolves once they are durable. */
  private async snapshot(method: string, url: RequestTarget): Promise<Reply> {
    if (method !== 'POST') throw methodNotAllowed(method, url.pathname, 'POST');
    checkQuery(url, ['group']);
    const raw = url.searchParams.get('group');
    if (raw !== null && !/^\d{1,9}$/.test(raw)) throw new KvError('BAD_REQUEST', `group must be a number, not "${raw}"`, NOT_APPLIED);
    const taken = await this.attached().snapshot(raw === null ? undefined : Number(raw));
    const snapshots = taken.map(({ group, instanceId, path, bytes, copyMs, totalMs }) => ({
      group, instanceId, written: path !== undefined, path: path ?? null, bytes,
      copyMs: Math.round(copyMs), totalMs: Math.round(totalMs),
    }));
    return { status: 200, headers: this.commonHeaders(), body: { nodeId: this.attached().nodeId, snapshots } };
  }

  private status(): Reply {
    const service = this.service;
    if (service === undefined) return { status: 503, body: { starting: true, endpoint: this.endpoint } };
    const membership = service.node.members(0);
    return {
      status: 200,
      headers: this.commonHeaders(),
      body: {
        nodeId: service.nodeId,
        endpoint: this.endpoint,
        follower: service.node.isFollower,
        members: membership.members,
        groups: service.status(),
        kv: service.machine.stats(),
        watches: service.watches.watching,
        uptimeSeconds: Math.round(process.uptime()),
      },
    };
  }

  private metrics(): Reply {
    const out = new PrometheusWriter();
    this.requests.render(out);
    if (this.service !== undefined) {
      renderNodeMetrics(out, this.service.node.metrics());
      const stats = this.service.machine.stats();
      out.family('multipaxos_kv_keys', 'gauge', 'Keys holding a value on this node.');
      out.sample('multipaxos_kv_keys', {}, stats.keys);
      out.family('multipaxos_kv_tombstones', 'gauge', 'Deleted keys, kept for their versions.');
      out.sample('multipaxos_kv_tombstones', {}, stats.tombstones);
      out.family('multipaxos_kv_value_bytes', 'gauge', 'Bytes of values held on this node.');
      out.sample('multipaxos_kv_value_bytes', {}, stats.valueBytes);
      const watches = this.service.watches;
      out.family('multipaxos_kv_watches', 'gauge', 'Watches streaming from this node.');
      out.sample('multipaxos_kv_watches', {}, watches.watching);
      out.family('multipaxos_kv_watches_ended_total', 'counter', 'Watches ended because they could not go on without a gap.');
      out.sample('multipaxos_kv_watches_ended_total', { reason: 'dropped' }, watches.dropped);
      out.sample('multipaxos_kv_watches_ended_total', { reason: 'compacted' }, watches.compacted);
    }
    if (this.peers !== undefined) {
      out.family('multipaxos_kv_peer_forward_frames_total', 'counter',
        'Frames of requests forwarded over the nodes\' own connections, by what became of them.');
      for (const [outcome, count] of Object.entries(this.peers.counters)) {
        out.sample('multipaxos_kv_peer_forward_frames_total', { outcome }, count);
      }
    }
    renderProcessMetrics(out);
    return { status: 200, body: new RawText(out.text(), 'text/plain; version=0.0.4; charset=utf-8') };
  }

  private attached(): KvService {
    if (this.service === undefined) throw new KvError('UNAVAILABLE', 'the node is starting', NOT_APPLIED);
    return this.service;
  }

  /** The headers of every answer (none before `attach`); built once, shared and never changed. */
  private commonHeaders(): Readonly<Record<string, string>> {
    return this.answerHeaders?.common ?? {};
  }

  /** The headers of an answer about a key of `group` (key requests run only once attached). */
  private groupHeaders(group: number): Readonly<Record<string, string>> {
    const headers = this.answerHeaders?.groups[group];
    if (headers === undefined) throw new KvError('UNAVAILABLE', 'the node is starting', NOT_APPLIED);
    return headers;
  }
}

/**
 * The page's script and style are inline and it fetches only its own origin: the policy says so,
 * so that nothing else runs even if some text from the cluster slipped into the markup.
 */
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1_000;

function listQueryOf(url: RequestTarget): { prefix: string; after: string | undefined; limit: number; stale: boolean } {
  const rawLimit = url.searchParams.get('limit');
  if (rawLimit !== null && (!/^\d{1,4}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > MAX_LIST_LIMIT)) {
    throw new KvError('BAD_REQUEST', `limit is an integer from 1 to ${MAX_LIST_LIMIT}`, NOT_APPLIED);
  }
  return {
    prefix: url.searchParams.get('prefix') ?? '',
    after: url.searchParams.get('after') ?? undefined,
    limit: rawLimit === null ? DEFAULT_LIST_LIMIT : Number(rawLimit),
    stale: booleanParameter(url, 'stale'),
  };
}

function groupOf(raw: string): number {
  if (!/^\d{1,9}$/.test(raw)) throw new KvError('BAD_REQUEST', `group must be a number, not "${raw}"`, NOT_APPLIED);
  return Number(raw);
}

function writtenBody(
  key: string, written: { version: number; duplicate?: boolean }, metrics: KvRequestMetrics,
): Record<string, unknown> {
  const body = { key, version: written.version };
  if (written.duplicate !== true) return body;
  metrics.duplicates++;
  return { ...body, duplicate: true };
}

/**
 * The path as it was sent: URL parsing resolves dot segments, which would turn the keys "." and ".."
 * (sent as /v1/kv/. and /v1/kv/..) into other paths.
 */
function rawPathOf(request: IncomingMessage, url: RequestTarget): string {
  const raw = request.url ?? '/';
  return raw.startsWith('/') ? raw.split('?', 1)[0] as string : url.pathname;
}

function timeoutOf(request: IncomingMessage): number {
  const raw = request.headers[TIMEOUT_HEADER];
  if (raw === undefined) return 5_000;
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || value < 1 || value > MAX_TIMEOUT_MS) {
    throw new KvError('BAD_REQUEST', `${TIMEOUT_HEADER} must be an integer from 1 to ${MAX_TIMEOUT_MS}`, NOT_APPLIED);
  }
  return value;
}

/** Whether every host a transport connection runs between is this machine's loopback (none: no). */
function isLoopbackPeer(hosts: readonly string[]): boolean {
  return hosts.length > 0 && hosts.every(isLoopbackHost);
}

function forwardedHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ['x-multipaxos-node', 'x-multipaxos-endpoint', 'x-multipaxos-groups', 'x-multipaxos-group']) {
    const value = headers[name];
    if (typeof value === 'string') kept[name] = value;
  }
  return kept;
}
