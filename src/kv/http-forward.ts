/**
 * Forwarding a KV request from a node that is not its group's master to the master, so that any
 * node's endpoint serves every key (curl needs no redirects). One hop only: the forwarded request
 * carries FORWARDED_HEADER, and a node that is not the master either answers it with NOT_MASTER.
 * The outcome stays honest: a write whose forwarded request failed after it was sent may have
 * been applied, and says so.
 *
 * A master that stops answering (frozen, cut off from this node) is still named by this node until
 * its lease runs out here. The forwarder answers before the caller's deadline (TIMEOUT, maybe
 * applied for a write: it was sent), and then, for `silentMs`, refuses further forwards to that
 * master at once with UNAVAILABLE, certainly not applied (nothing is sent), so callers do not each
 * wait out their deadline on it and can try elsewhere or again.
 *
 * The caller's Authorization header goes with the request, and the master checks it again: a
 * forwarded request has exactly the caller's rights there. Over HTTPS the master's certificate is
 * verified against the cluster CA (and its name against the endpoint's host, as any client does).
 * A node serving HTTPS forwards over HTTPS only, and credentials never go over plain HTTP off
 * loopback (src/kv/cleartext-guard.ts).
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { mayCarryCredentials } from './cleartext-guard.js';
import { FORWARDED_HEADER, FORWARDED_ROLE_HEADER, TIMEOUT_HEADER } from './http-headers.js';
import { KvError, NOT_APPLIED } from './kv-error.js';

/** The cause code of a forward not sent because its master went silent lately (see silentMs). */
export const MASTER_SILENT = 'ERR_MASTER_SILENT';

export interface ForwardedReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface ForwardRequest {
  readonly endpoint: string;
  readonly method: string;
  /** Path and query, as received. */
  readonly path: string;
  readonly body: string | undefined;
  readonly fromNodeId: number;
  /** The caller's Authorization header, sent on for the master to authenticate. */
  readonly authorization?: string;
  /** The role of a caller authenticated by its client certificate, sent on over this node's own certificate. */
  readonly callerRole?: string;
  readonly timeoutMs: number;
  readonly isWrite: boolean;
  /** Fires when the original client goes away: the forwarded request is abandoned too. */
  readonly signal?: AbortSignal;
  /** Headers of the request that the master needs too (a write's session). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Most replies are small; beyond this a reply is refused rather than buffered. */
const MAX_REPLY_BYTES = 16 * 1024 * 1024;
/**
 * How long a master that let a forwarded request time out is not forwarded to: the smallest lease
 * (1 s), within which this node either learns of a new master or the old one answers again.
 */
const DEFAULT_SILENT_MS = 1_000;

export class Forwarder {
  private readonly agent: Agent;
  private readonly secureAgent: HttpsAgent;
  /**
   * The node's TLS files (read at each request: they may be rotated): the CA that HTTPS masters'
   * certificates must chain to, and the node's certificate, presented to the master.
   */
  private readonly tls: (() => { ca: Buffer; cert: Buffer; key: Buffer }) | undefined;
  private readonly silentMs: number;
  /** Masters that let a forwarded request time out, and until when they are not forwarded to. */
  private readonly silentUntil = new Map<string, number>();

  /** `localAddress`: the local IP address forwarded requests leave from (default: the system chooses). */
  constructor(options: {
    silentMs?: number; localAddress?: string; tls?: () => { ca: Buffer; cert: Buffer; key: Buffer };
  } = {}) {
    this.silentMs = options.silentMs ?? DEFAULT_SILENT_MS;
    this.tls = options.tls;
    const { localAddress } = options;
    const bind = localAddress === undefined ? {} : { localAddress };
    this.agent = new Agent({ keepAlive: true, maxSockets: 256, ...bind });
    this.secureAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256, ...bind });
  }

  forward(forwarded: ForwardRequest): Promise<ForwardedReply> {
    const silent = this.silentUntil.get(forwarded.endpoint);
    if (silent !== undefined && silent > performance.now()) {
      return Promise.reject(new KvError('UNAVAILABLE', `the master at ${forwarded.endpoint} did not answer lately; ` +
        'not forwarding to it for now (the request was not sent), try again',
      { ...NOT_APPLIED, cause: Object.assign(new Error('the master went silent'), { code: MASTER_SILENT }) }));
    }
    // The path goes as received: a URL would resolve the dot segments of keys "." and "..".
    const url = new URL(forwarded.endpoint);
    // A node serving HTTPS never forwards over plain HTTP, and a caller's credentials never cross
    // the network in clear (a master announced at an http: endpoint off this machine is refused).
    const credentials = forwarded.authorization !== undefined || forwarded.callerRole !== undefined;
    if ((this.tls !== undefined && url.protocol !== 'https:') || (credentials && !mayCarryCredentials(url))) {
      return Promise.reject(new KvError('UNAVAILABLE', `not forwarding to the master at ${forwarded.endpoint} over ` +
        'plain HTTP (the request was not sent); ask the master directly over HTTPS', NOT_APPLIED));
    }
    const body = forwarded.body === undefined ? undefined : Buffer.from(forwarded.body, 'utf8');
    // The master gets a little less time than we have, so that its own answer wins over our backstop.
    const masterTimeoutMs = Math.max(1, Math.floor(forwarded.timeoutMs - Math.min(100, forwarded.timeoutMs / 10)));
    return new Promise<ForwardedReply>((resolvePromise, rejectPromise) => {
      // The backstop answers within the caller's time, and it runs from now, so a request waiting for
      // one of the agent's sockets is bounded too.
      const backstop = setTimeout(() => {
        // Only a write's silence holds the master back: a read waits one short attempt for it
        // (master-wait.ts, READ_ATTEMPT_MS), and a master merely slow to read still takes writes.
        if (forwarded.isWrite) this.silentUntil.set(forwarded.endpoint, performance.now() + this.silentMs);
        outgoing.destroy(new KvError('TIMEOUT', `the master at ${forwarded.endpoint} did not answer within ` +
          `${Math.round(forwarded.timeoutMs)} ms${forwarded.isWrite ? '; the write may have been applied' : ''}`,
        { mayHaveBeenApplied: forwarded.isWrite }));
      }, Math.max(1, forwarded.timeoutMs));
      const onAbort = (): void => { outgoing.destroy(new Error('the client went away')); };
      forwarded.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        clearTimeout(backstop);
        forwarded.signal?.removeEventListener('abort', onAbort);
      };
      const resolve = (reply: ForwardedReply): void => { settle(); resolvePromise(reply); };
      const reject = (error: KvError): void => { settle(); rejectPromise(error); };
      const headers: Record<string, string | number> = {
        ...forwarded.headers,
        [FORWARDED_HEADER]: String(forwarded.fromNodeId),
        [TIMEOUT_HEADER]: String(masterTimeoutMs),
      };
      if (forwarded.authorization !== undefined) headers.authorization = forwarded.authorization;
      else if (forwarded.callerRole !== undefined) headers[FORWARDED_ROLE_HEADER] = forwarded.callerRole;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = body.length;
      }
      const secure = url.protocol === 'https:';
      const files = secure ? this.tls?.() : undefined;
      const options = {
        method: forwarded.method, path: forwarded.path, agent: secure ? this.secureAgent : this.agent, headers,
        ...(files === undefined ? {} : { ca: files.ca, cert: files.cert, key: files.key }),
      };
      const send = secure ? httpsRequest : httpRequest;
      const outgoing = send(url, options, (reply) => {
        const chunks: Buffer[] = [];
        let size = 0;
        reply.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_REPLY_BYTES) reply.destroy(new Error('the master\'s reply is too large'));
          else chunks.push(chunk);
        });
        reply.once('end', () => {
          this.silentUntil.delete(forwarded.endpoint);
          resolve({ status: reply.statusCode ?? 502, headers: reply.headers, body: Buffer.concat(chunks) });
        });
        reply.once('error', (error) => reject(failure(forwarded, error, true)));
      });
      outgoing.once('error', (error) => reject(failure(forwarded, error, !isRefused(error))));
      outgoing.end(body);
    });
  }

  /** Hold back from `endpoint` as if a request forwarded to it had timed out (another way did). */
  silence(endpoint: string): void {
    this.silentUntil.set(endpoint, performance.now() + this.silentMs);
  }

  close(): void {
    this.agent.destroy();
    this.secureAgent.destroy();
  }
}

function isRefused(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
}

function failure(forwarded: ForwardRequest, error: Error, maySent: boolean): KvError {
  if (error instanceof KvError) return error;
  const mayHaveBeenApplied = forwarded.isWrite && maySent;
  return new KvError('UNAVAILABLE', `forwarding to the master at ${forwarded.endpoint} failed: ${error.message}` +
    (mayHaveBeenApplied ? '; the write may have been applied' : ''), { mayHaveBeenApplied, cause: error });
}
