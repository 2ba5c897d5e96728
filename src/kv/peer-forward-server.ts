/**
 * The master's side of forwarding over the nodes' own connections (peer-forward.ts): a key request
 * another node forwarded, served as if it had come over HTTP from the caller. The caller's token is
 * authenticated here again, a certificate caller's role is believed only from a peer authenticated
 * by its node certificate, and this node, master or not, never forwards it again. Its body counts
 * against the server's budget for bodies, like an HTTP body being received, while it is served.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isRole, type Role, type TokenStore } from '../security/tokens.js';
import { authorizeCounted } from './http-auth.js';
import { FORWARDED_HEADER, SEQUENCE_HEADER, SESSION_HEADER } from './http-headers.js';
import { failureOf, failureReply, outcomeOf, payloadOf, type Reply } from './http-reply.js';
import {
  type BodyBudget, keyOfPath, MAX_BODY_BYTES, MAX_TIMEOUT_MS, requestTargetOf, type RequestTarget,
} from './http-request.js';
import { KvError, NOT_APPLIED } from './kv-error.js';
import type { KvOperation, KvRequestMetrics } from './kv-metrics.js';
import type { PeerReply } from './peer-forward.js';
import type { ForwardedRequest, ForwardMethod } from './peer-forward-codec.js';

/** A key request as the HTTP server serves it, whichever way it came (see KvHttpServer.keyRequest). */
export interface ForwardedKeyRequest {
  readonly key: string;
  readonly method: ForwardMethod;
  readonly url: RequestTarget;
  readonly rawUrl: string;
  readonly headers: IncomingHttpHeaders;
  readonly began: number;
  readonly timeoutMs: number;
  readonly signal: undefined;
  readonly certificateCaller: Role | undefined;
  readonly readBody: (limit: number | undefined) => Promise<string>;
  readonly overTransport: false;
}

/** What serving a forwarded request needs of the HTTP server. */
export interface ForwardedRequestHost {
  readonly tokens: TokenStore | undefined;
  readonly openMonitoring: boolean;
  readonly requests: KvRequestMetrics;
  readonly bodies: BodyBudget;
  commonHeaders(): Readonly<Record<string, string>>;
  keyRequest(request: ForwardedKeyRequest, countAs: (operation: KvOperation) => void): Promise<Reply>;
}

/** The reply to a request node `from` forwarded; never rejects: every failure is a reply. */
export async function serveForwardedRequest(
  host: ForwardedRequestHost, from: number, forwarded: ForwardedRequest, certifiedPeer: boolean,
): Promise<PeerReply> {
  const started = performance.now();
  let operation: KvOperation | undefined;
  let reply: Reply;
  const held = forwarded.body?.length ?? 0;
  let holding = false;
  try {
    if (host.bodies.inFlight + held > host.bodies.limit) {
      throw new KvError('OVERLOADED', 'this node is receiving too many request bodies; retry later', NOT_APPLIED);
    }
    host.bodies.inFlight += held;
    holding = true;
    reply = await routeForwarded(host, from, forwarded, certifiedPeer, (op) => { operation = op; });
    const seconds = (performance.now() - started) / 1000;
    if (operation !== undefined) host.requests.record(operation, outcomeOf(reply), seconds);
  } catch (error) {
    const failure = failureOf(error, forwarded.method !== 'GET', false);
    if (operation !== undefined) host.requests.record(operation, failure.code, (performance.now() - started) / 1000);
    if (failure.duplicate) host.requests.duplicates++;
    reply = failureReply(failure, host.commonHeaders());
  } finally {
    if (holding) host.bodies.inFlight -= held;
  }
  return { status: reply.status, headers: reply.headers ?? {}, body: payloadOf(reply).bytes };
}

async function routeForwarded(
  host: ForwardedRequestHost, from: number, forwarded: ForwardedRequest, certifiedPeer: boolean,
  countAs: (operation: KvOperation) => void,
): Promise<Reply> {
  const url = requestTargetOf(forwarded.path);
  // The raw path, as HTTP routes it (see http-server.ts rawPathOf).
  const path = forwarded.path.startsWith('/') ? forwarded.path.split('?', 1)[0] as string : url.pathname;
  const callerRole = certifiedPeer && forwarded.callerRole !== undefined && isRole(forwarded.callerRole)
    ? forwarded.callerRole : undefined;
  let certificateCaller: Role | undefined;
  if (host.tokens !== undefined) {
    const role = authorizeCounted(host.requests, host.tokens, forwarded.authorization, callerRole, forwarded.method,
      path, host.openMonitoring);
    if (forwarded.authorization === undefined) certificateCaller = role;
  }
  const key = keyOfPath(path);
  if (key === undefined) throw new KvError('NOT_FOUND', `no such path: ${path} (only keys are forwarded this way)`, NOT_APPLIED);
  // What the HTTP request would have carried: the session, and the mark of a request forwarded once.
  const headers: IncomingHttpHeaders = { [FORWARDED_HEADER]: String(from) };
  if (forwarded.session !== undefined) headers[SESSION_HEADER] = forwarded.session;
  if (forwarded.sequence !== undefined) headers[SEQUENCE_HEADER] = forwarded.sequence;
  const body = forwarded.body;
  return await host.keyRequest({
    key, method: forwarded.method, url, rawUrl: forwarded.path, headers, began: performance.now(),
    timeoutMs: Math.min(MAX_TIMEOUT_MS, forwarded.timeoutMs), signal: undefined, certificateCaller,
    readBody: (limit) => {
      const max = limit ?? MAX_BODY_BYTES;
      if (body !== undefined && body.length > max) {
        return Promise.reject(new KvError('VALUE_TOO_LARGE', `the body has ${body.length} bytes; the limit is ${max}`,
          NOT_APPLIED));
      }
      return Promise.resolve(body === undefined ? '' : body.toString('utf8'));
    },
    overTransport: false,
  }, countAs);
}
