/**
 * Parsing what a KV HTTP request carries, strictly: the key in the path, the query parameters
 * each route allows, and the PUT body. Anything else is a KvError with a 4xx status and a message
 * that says what was wrong; nothing a client sends can make the server throw anything else.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { SEQUENCE_HEADER, SESSION_HEADER } from './http-headers.js';
import { LONE_SURROGATE, MAX_KEY_BYTES, MAX_KV_VALUE_BYTES } from './kv-command.js';
import { KvError, NOT_APPLIED } from './kv-error.js';

export const KV_PATH_PREFIX = '/v1/kv/';
/** A JSON string escapes a byte in at most six characters (\u00XX); the rest is the field names. */
export const MAX_BODY_BYTES = MAX_KV_VALUE_BYTES * 6 + 4096;
/** The longest a request may ask to be waited for (x-multipaxos-timeout-ms). */
export const MAX_TIMEOUT_MS = 60_000;

export interface PutBody {
  readonly value: string;
  readonly version: number | undefined;
}

/** What the routes read of a request target: its path (for messages) and its query. */
export interface RequestTarget {
  readonly pathname: string;
  readonly searchParams: URLSearchParams;
}

/**
 * A plain path of unreserved, sub-delimiter and percent-encoded characters, with no query or
 * fragment and not `//` (which the URL parser reads as a host): what nearly every key request is.
 */
const PLAIN_PATH = /^\/(?!\/)[\w\-.~%!$&'()*+,;=:@/]*$/;

/**
 * The request target (origin-form, as HTTP received it) parsed; a plain path with no query skips
 * the URL parser (about 0.4 µs, on the node asked and again on the master it forwards to). Routes
 * are chosen on the raw path either way (http-server.ts rawPathOf); the URL parser's pathname, which
 * resolves dot segments, is only ever shown in messages.
 */
export function requestTargetOf(raw: string): RequestTarget {
  if (PLAIN_PATH.test(raw)) return { pathname: raw, searchParams: new URLSearchParams() };
  try {
    return new URL(raw, 'http://kv.invalid');
  } catch {
    throw new KvError('BAD_REQUEST', 'the request target is not a valid path', NOT_APPLIED);
  }
}

/** The key of `/v1/kv/{key}` (percent-decoded), or undefined for any other path. */
export function keyOfPath(pathname: string): string | undefined {
  if (!pathname.startsWith(KV_PATH_PREFIX)) return undefined;
  const encoded = pathname.slice(KV_PATH_PREFIX.length);
  if (encoded.length === 0) throw new KvError('BAD_REQUEST', 'the key is missing: use /v1/kv/{key}', NOT_APPLIED);
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    throw new KvError('BAD_REQUEST', 'the key is not valid percent-encoded UTF-8', NOT_APPLIED);
  }
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new KvError('KEY_TOO_LARGE', `the key has more than ${MAX_KEY_BYTES} bytes`, NOT_APPLIED);
  }
  return key;
}

/** Refuse query parameters the route does not know, so a typo is not silently ignored. */
export function checkQuery(url: RequestTarget, allowed: readonly string[]): void {
  for (const name of url.searchParams.keys()) {
    if (!allowed.includes(name)) {
      const known = allowed.length === 0 ? 'none' : allowed.join(', ');
      throw new KvError('BAD_REQUEST', `unknown query parameter "${name}" (allowed here: ${known})`, NOT_APPLIED);
    }
  }
}

export function booleanParameter(url: RequestTarget, name: string): boolean {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === 'false') return false;
  if (raw === 'true' || raw === '') return true;
  throw new KvError('BAD_REQUEST', `${name} must be true or false, got "${raw}"`, NOT_APPLIED);
}

export function versionParameter(url: RequestTarget): number | undefined {
  const raw = url.searchParams.get('version');
  if (raw === null) return undefined;
  return parseVersion(raw);
}

/** The PUT body {"value": string, "version"?: n}; unknown fields are refused. */
export function parsePutBody(text: string): PutBody {
  const body = jsonObject(text, '{"value": "...", "version": n}');
  refuseUnknownFields(body, ['value', 'version'], 'a PUT body has value and, optionally, version');
  if (typeof body.value !== 'string') throw new KvError('BAD_REQUEST', 'value must be a string', NOT_APPLIED);
  // JSON can spell an unpaired surrogate (\ud800), which UTF-8 cannot store: it would come back changed.
  if (LONE_SURROGATE.test(body.value)) throw new KvError('BAD_REQUEST', 'value must be well-formed Unicode', NOT_APPLIED);
  const bytes = Buffer.byteLength(body.value, 'utf8');
  if (bytes > MAX_KV_VALUE_BYTES) {
    throw new KvError('VALUE_TOO_LARGE', `the value has ${bytes} bytes; the limit is ${MAX_KV_VALUE_BYTES}`, NOT_APPLIED);
  }
  return { value: body.value, version: checkedBodyVersion(body.version) };
}

/**
 * The version a DELETE is conditional on: `?version=n` or a body `{"version": n}` (the field PUT
 * uses), not both. No body (or an empty one) and no parameter: unconditional. Unknown fields, a
 * malformed version or a body that is not a JSON object are refused, never ignored.
 */
export function deleteVersion(url: RequestTarget, text: string): number | undefined {
  const fromQuery = versionParameter(url);
  if (text.length === 0) return fromQuery;
  const body = jsonObject(text, 'a DELETE body, if any, is {"version": n}');
  refuseUnknownFields(body, ['version'], 'a DELETE body has only version');
  const version = checkedBodyVersion(body.version);
  if (version !== undefined && fromQuery !== undefined) {
    throw new KvError('BAD_REQUEST', 'give the version once: in ?version=n or in the body, not both', NOT_APPLIED);
  }
  return version ?? fromQuery;
}

/** The body as a JSON object, or BAD_REQUEST naming the shape expected. */
function jsonObject(text: string, shape: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KvError('BAD_REQUEST', `the body is not valid JSON; send ${shape}`, NOT_APPLIED);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new KvError('BAD_REQUEST', `the body must be a JSON object: ${shape}`, NOT_APPLIED);
  }
  return parsed as Record<string, unknown>;
}

/** Fields a body does not have are refused, never ignored. */
function refuseUnknownFields(body: Record<string, unknown>, known: readonly string[], what: string): void {
  for (const field of Object.keys(body)) {
    if (!known.includes(field)) throw new KvError('BAD_REQUEST', `unknown field "${field}" (${what})`, NOT_APPLIED);
  }
}

/** A body's optional version: absent (or null) is undefined; anything but an integer of at least 0 is refused. */
function checkedBodyVersion(version: unknown): number | undefined {
  if (version === undefined || version === null) return undefined;
  if (typeof version !== 'number' || !isVersion(version)) {
    throw new KvError('BAD_REQUEST', `version must be an integer of at least 0, got ${JSON.stringify(version)}`, NOT_APPLIED);
  }
  return version;
}

/** The bytes of request bodies a server holds at once, so slow senders cannot exhaust its memory. */
export class BodyBudget {
  inFlight = 0;
  constructor(readonly limit: number) {}
}

/**
 * The whole body as UTF-8, refused beyond MAX_BODY_BYTES before it is buffered, and with
 * OVERLOADED when the server's budget for bodies being received is spent.
 */
export async function readBody(request: IncomingMessage, budget?: BodyBudget, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new KvError('VALUE_TOO_LARGE', `the body has ${declared} bytes; the limit is ${limit}`, NOT_APPLIED);
  }
  // The common case, a declared length the budget has room for: plain stream events (an async
  // iterator costs several promises a chunk), the length held in the budget until the body is in.
  if (Number.isSafeInteger(declared) && declared >= 0 &&
    (budget === undefined || budget.inFlight + declared <= budget.limit)) {
    return await readDeclaredBody(request, declared, budget);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let counted = 0;
  try {
    for await (const chunk of request) {
      const length = (chunk as Buffer).length;
      size += length;
      if (size > limit) throw new KvError('VALUE_TOO_LARGE', `the body exceeds ${limit} bytes`, NOT_APPLIED);
      if (budget !== undefined) {
        budget.inFlight += length;
        counted += length;
        if (budget.inFlight > budget.limit) {
          throw new KvError('OVERLOADED', 'the server is receiving too many request bodies; try again', NOT_APPLIED);
        }
      }
      chunks.push(chunk as Buffer);
    }
  } finally {
    if (budget !== undefined) budget.inFlight -= counted;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A body of `declared` bytes (the HTTP parser holds the sender to it), read with stream events. */
function readDeclaredBody(request: IncomingMessage, declared: number, budget: BodyBudget | undefined): Promise<string> {
  if (budget !== undefined) budget.inFlight += declared;
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const finish = (error: Error | undefined): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
      if (budget !== undefined) budget.inFlight -= declared;
      if (error !== undefined) reject(error);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
    };
    const onEnd = (): void => finish(undefined);
    const onError = (error: Error): void => finish(error);
    // Closed before its end: the client went away (the caller sees the request destroyed).
    const onClose = (): void => finish(new Error('the request closed before its body ended'));
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}

function parseVersion(raw: string): number {
  const version = Number(raw);
  if (!/^\d+$/.test(raw) || !isVersion(version)) {
    throw new KvError('BAD_REQUEST', `version must be an integer of at least 0, got "${raw}"`, NOT_APPLIED);
  }
  return version;
}

function isVersion(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * The session of a write (SESSION_HEADER and SEQUENCE_HEADER), checked to belong to the key's group:
 * ids are per group, so another group's id names another client's session. Undefined: none.
 */
export function sessionOfRequest(
  headers: IncomingHttpHeaders, group: number,
): { readonly group: number; readonly id: number; readonly sequence: number } | undefined {
  const token = headers[SESSION_HEADER];
  const sequence = headers[SEQUENCE_HEADER];
  if (token === undefined && sequence === undefined) return undefined;
  const match = typeof token === 'string' ? /^(\d{1,9})\.(\d{1,15})$/.exec(token) : null;
  if (match === null || typeof sequence !== 'string' || !/^\d{1,15}$/.test(sequence)) {
    throw new KvError('BAD_REQUEST', `a session write sends ${SESSION_HEADER}: <group>.<id> (as POST /v1/sessions ` +
      `answered) and ${SEQUENCE_HEADER}: <n>, n from 1`, NOT_APPLIED);
  }
  const id = Number(match[2]);
  const number = Number(sequence);
  if (Number(match[1]) !== group) {
    throw new KvError('BAD_REQUEST', `session ${token} is of group ${match[1]}; this key is in group ${group} ` +
      '(open a session there)', NOT_APPLIED);
  }
  if (id < 1 || number < 1) throw new KvError('BAD_REQUEST', 'session ids and sequence numbers start at 1', NOT_APPLIED);
  return { group, id, sequence: number };
}

/** The body of POST /v1/sessions: empty, or {"ttlMs": n}. */
export function sessionTtlOf(text: string): number | undefined {
  if (text.trim().length === 0) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new KvError('BAD_REQUEST', 'the body is not JSON', NOT_APPLIED);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) ||
    Object.keys(body).some((name) => name !== 'ttlMs')) {
    throw new KvError('BAD_REQUEST', 'the body of POST /v1/sessions is {"ttlMs": n} or empty', NOT_APPLIED);
  }
  const ttlMs = (body as { ttlMs?: unknown }).ttlMs;
  if (ttlMs !== undefined && (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs))) {
    throw new KvError('BAD_REQUEST', 'ttlMs is an integer of milliseconds', NOT_APPLIED);
  }
  return ttlMs;
}
