/**
 * One attempt of the KV client: one HTTP request to one node, and what its failure means for a
 * write. `mayHaveBeenApplied` is true as soon as the request may have left this process (the
 * socket was connected), unless the node itself answered that the write was not applied.
 */
import { type Agent, request as httpRequest } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { NO_FORWARD_HEADER, TIMEOUT_HEADER } from './http-headers.js';
import { isKvErrorCode, KvError, NOT_APPLIED, type KvErrorCode } from './kv-error.js';

export interface HttpReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Record<string, unknown>;
}

export interface Attempt {
  readonly endpoint: string;
  readonly method: string;
  readonly path: string;
  readonly body: string | undefined;
  /** How long this attempt may take (ms). */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** Sent as the Authorization header (a bearer token), when set. */
  readonly authorization?: string;
  /** More headers (a write's session). */
  readonly headers?: Readonly<Record<string, string>>;
}

const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/** Sends one attempt; rejects with a KvError (TIMEOUT when the node stayed silent for `timeoutMs`). */
export function sendAttempt(agent: Agent | HttpsAgent, attempt: Attempt): Promise<HttpReply> {
  const { endpoint, method, timeoutMs, signal } = attempt;
  const isWrite = method !== 'GET';
  if (timeoutMs <= 0) return Promise.reject(new KvError('TIMEOUT', 'the deadline passed', NOT_APPLIED));
  if (signal?.aborted === true) return Promise.reject(new KvError('ABORTED', 'the caller aborted', NOT_APPLIED));
  const payload = attempt.body === undefined ? undefined : Buffer.from(attempt.body, 'utf8');
  return new Promise<HttpReply>((resolve, reject) => {
    let sent = false;
    const headers: Record<string, string | number> = {
      ...attempt.headers,
      // The server gives up a little before we do, so that its answer, not our timer, tells the outcome.
      [TIMEOUT_HEADER]: String(Math.max(1, Math.floor(Math.min(60_000, timeoutMs - Math.min(250, timeoutMs / 10))))),
      // The client follows masters itself: a node that is not the master answers NOT_MASTER rather
      // than forwarding, so the node we talk to is the only one that can apply the write, and a
      // silent master shows as our own attempt's timeout rather than hiding behind a forwarding node.
      [NO_FORWARD_HEADER]: '1',
    };
    if (attempt.authorization !== undefined) headers.authorization = attempt.authorization;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    // The path goes as it is: a URL would resolve the dot segments of the keys "." and "..".
    const options = { method, path: attempt.path, agent, headers, signal };
    const url = new URL(endpoint);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const outgoing = send(url, options as Parameters<typeof httpRequest>[1], (incoming) => {
      const chunks: Buffer[] = [];
      let size = 0;
      incoming.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // A value is at most 1 MiB (6 MiB as escaped JSON): a bigger answer is not from a KV node.
        if (size > MAX_REPLY_BYTES) incoming.destroy(new Error(`${endpoint} answered more than ${MAX_REPLY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      incoming.once('error', (error) => reject(networkError(error, isWrite, true)));
      incoming.once('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          parsed = undefined;
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          reject(new KvError('UNAVAILABLE', `${endpoint} answered ${incoming.statusCode} without a JSON object`,
            { mayHaveBeenApplied: isWrite }));
          return;
        }
        const status = incoming.statusCode ?? 0;
        resolve({ status, headers: incoming.headers, body: parsed as Record<string, unknown> });
      });
    });
    outgoing.once('socket', (socket) => {
      // A new socket: over TLS nothing of the request leaves before the TLS handshake is done. A
      // reused keep-alive socket is ready at once.
      const ready = url.protocol === 'https:' ? 'secureConnect' : 'connect';
      if (!socket.connecting) sent = true;
      else socket.once(ready, () => { sent = true; });
    });
    outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new KvError('TIMEOUT',
      `no answer from ${endpoint} within ${Math.round(timeoutMs)} ms` +
      `${isWrite && sent ? '; the write may have been applied' : ''}`,
      { mayHaveBeenApplied: isWrite && sent })));
    outgoing.once('error', (error) => reject(networkError(error, isWrite, sent)));
    outgoing.end(payload);
  });
}

function networkError(error: Error, isWrite: boolean, sent: boolean): KvError {
  if (error instanceof KvError) return error;
  if (error.name === 'AbortError') {
    return new KvError('ABORTED', `the caller aborted${isWrite && sent ? '; the write may have been applied' : ''}`,
      { mayHaveBeenApplied: isWrite && sent });
  }
  const refused = (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  const mayHaveBeenApplied = isWrite && sent && !refused;
  return new KvError('UNAVAILABLE', `${error.message}${mayHaveBeenApplied ? '; the write may have been applied' : ''}`,
    { mayHaveBeenApplied, cause: error });
}

export function isRefused(failure: KvError): boolean {
  return (failure.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
}

/**
 * An answer's error. Without a word on it (a proxy's 502, an answer that lacks the field), a write
 * may have been applied; a read's error always says false (a read changes nothing).
 */
export function errorOf(reply: HttpReply, isWrite: boolean): KvError {
  const { body } = reply;
  const code: KvErrorCode = isKvErrorCode(body.error) ? body.error : 'INTERNAL';
  const master = body.master as { nodeId?: unknown; endpoint?: unknown } | undefined;
  return new KvError(code, typeof body.message === 'string' ? body.message : `HTTP ${reply.status}`, {
    mayHaveBeenApplied: isWrite && body.mayHaveBeenApplied !== false,
    version: typeof body.version === 'number' ? body.version : undefined,
    master: typeof master?.nodeId === 'number'
      ? { nodeId: master.nodeId, endpoint: typeof master.endpoint === 'string' ? master.endpoint : undefined }
      : undefined,
  });
}
