/**
 * The answers of the KV HTTP API, shared by the requests HTTP receives (http-server.ts) and those
 * another node forwards over the transport (peer-forward-server.ts): a reply's body and bytes, the
 * reply of a failure, and writing a reply that cannot throw past the handler.
 */
import type { ServerResponse } from 'node:http';
import { isKvErrorCode, KvError, NOT_APPLIED } from './kv-error.js';

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A body passed through as it came (a forwarded reply). */
export class RawJson {
  constructor(readonly bytes: Buffer) {}
}

export class RawText {
  constructor(readonly text: string, readonly contentType: string) {}
}

/** A 405; its answer carries the `Allow` header (RFC 9110) with the methods the path takes. */
export class MethodNotAllowed extends KvError {
  constructor(method: string, path: string, readonly allow: string) {
    super('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path} (allowed: ${allow})`, NOT_APPLIED);
  }
}

export function methodNotAllowed(method: string, path: string, allowed: string): KvError {
  return new MethodNotAllowed(method, path, allowed);
}

/** What a failed request is answered with: a KvError as it is; anything else INTERNAL (or ABORTED). */
export function failureOf(error: unknown, isWrite: boolean, clientGone: boolean): KvError {
  if (error instanceof KvError) return error;
  return clientGone ? new KvError('ABORTED', 'the client went away', { mayHaveBeenApplied: isWrite })
    : new KvError('INTERNAL', String(error), { mayHaveBeenApplied: isWrite });
}

/** The reply of `failure`, with the headers HTTP asks of a 405 and a 401. */
export function failureReply(failure: KvError, commonHeaders: Readonly<Record<string, string>>): Reply {
  const headers: Record<string, string> = failure instanceof MethodNotAllowed
    ? { ...commonHeaders, allow: failure.allow } : { ...commonHeaders };
  if (failure.code === 'UNAUTHENTICATED') headers['www-authenticate'] = 'Bearer realm="multipaxos"';
  return { status: failure.httpStatus, body: failure.toJSON(), headers };
}

/** How a request ended: OK, or its error code (a forwarded reply carries the master's). */
export function outcomeOf(reply: Reply): string {
  if (reply.status < 400) return 'OK';
  if (reply.body instanceof RawJson) {
    try {
      const code = (JSON.parse(reply.body.bytes.toString('utf8')) as { error?: unknown } | null)?.error;
      if (isKvErrorCode(code)) return code;
    } catch {
      // Not JSON: counted as INTERNAL below.
    }
  }
  return 'INTERNAL';
}

/** A reply's bytes and their content type. */
export function payloadOf(reply: Reply): { bytes: Buffer; contentType: string } {
  if (reply.body instanceof RawJson) return { bytes: reply.body.bytes, contentType: 'application/json' };
  if (reply.body instanceof RawText) return { bytes: Buffer.from(reply.body.text, 'utf8'), contentType: reply.body.contentType };
  return { bytes: Buffer.from(`${JSON.stringify(reply.body)}\n`, 'utf8'), contentType: 'application/json' };
}

/**
 * Write `reply`. Never throws: a reply Node refuses to write (a header it finds invalid, say) ends
 * the connection instead, and `onUnsendable` hears why; a caller in a promise's callback would
 * otherwise turn it into an unhandled rejection, which ends the process.
 */
export function sendReply(response: ServerResponse, reply: Reply, onUnsendable: (error: unknown) => void): void {
  if (response.headersSent || response.destroyed) return;
  try {
    const { bytes: payload, contentType } = payloadOf(reply);
    response.writeHead(reply.status, {
      ...reply.headers, 'content-type': contentType, 'content-length': payload.length,
    });
    response.end(response.req.method === 'HEAD' ? undefined : payload);
  } catch (error) {
    response.destroy();
    onUnsendable(error);
  }
}
