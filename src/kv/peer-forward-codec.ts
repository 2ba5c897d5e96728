/**
 * The bytes of a KV request forwarded to a group's master over the nodes' own transport connection
 * (peer-forward.ts), and of the master's reply. Every field is length-prefixed; decoding trusts
 * nothing: a length past the end, an unknown type or method, or bytes left over is a
 * ForwardFrameError, and the frame is dropped (and counted) by the receiver.
 *
 *   u8 type (1 request, 2 reply, 3 hello, 4 hello-ack) | u32 id | ...
 *   request: u32 timeoutMs | u8 method (1 GET, 2 PUT, 3 DELETE) | u8 fields present
 *            | str16 path | [str16 authorization] | [str8 callerRole] | [str16 session]
 *            | [str16 sequence] | [u32 body length, body]
 *   reply:   u16 status (200-599) | u8 headers | (str8 name, str16 value)... | u32 body length, body
 *            (names are HTTP tokens, values visible ASCII, space and tab: the forwarding node
 *            passes some on to its caller, and Node would throw on a CR or LF)
 *   hello, hello-ack: nothing more (a node learns that its peer speaks this protocol)
 *   retry over HTTP: nothing more (the reply to request id does not fit a frame)
 *
 * Strings are latin1, as Node hands HTTP request lines and header values over: the caller's bytes
 * go through unchanged. Little-endian, like the transport's frames.
 */

export const FORWARD_REQUEST = 1;
export const FORWARD_REPLY = 2;
export const FORWARD_HELLO = 3;
export const FORWARD_HELLO_ACK = 4;
/** The master's reply to request `id` does not fit a frame (or would crowd the queue): ask over HTTP. */
export const FORWARD_RETRY_OVER_HTTP = 5;

/** RFC 9110 token characters: a header name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, space and tab: a header value Node writes without ERR_INVALID_CHAR (no CR, LF, NUL). */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

const METHODS = ['GET', 'PUT', 'DELETE'] as const;
export type ForwardMethod = (typeof METHODS)[number];

const HAS_AUTHORIZATION = 1;
const HAS_ROLE = 2;
const HAS_SESSION = 4;
const HAS_SEQUENCE = 8;
const HAS_BODY = 16;
const KNOWN_FIELDS = HAS_AUTHORIZATION | HAS_ROLE | HAS_SESSION | HAS_SEQUENCE | HAS_BODY;

export interface ForwardedRequest {
  readonly id: number;
  readonly timeoutMs: number;
  readonly method: ForwardMethod;
  /** Path and query, as the caller sent them. */
  readonly path: string;
  readonly authorization?: string;
  /** A certificate-authenticated caller's role: believed only from a certified peer. */
  readonly callerRole?: string;
  readonly session?: string;
  readonly sequence?: string;
  readonly body?: Buffer;
}

export interface ForwardedReplyFrame {
  readonly id: number;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export type ForwardFrame =
  | { readonly type: typeof FORWARD_REQUEST; readonly request: ForwardedRequest }
  | { readonly type: typeof FORWARD_REPLY; readonly reply: ForwardedReplyFrame }
  | {
    readonly type: typeof FORWARD_HELLO | typeof FORWARD_HELLO_ACK | typeof FORWARD_RETRY_OVER_HTTP;
    readonly id: number;
  };

export class ForwardFrameError extends Error {}

export function isForwardMethod(method: string): method is ForwardMethod {
  return (METHODS as readonly string[]).includes(method);
}

/**
 * Writes a frame into one buffer allocated at its exact size (the sizes are summed first): one
 * allocation per frame, strings written in place.
 */
class Writer {
  private offset = 0;
  readonly out: Buffer;

  constructor(size: number) {
    this.out = Buffer.allocUnsafe(size);
  }

  u8(value: number): void {
    this.out.writeUInt8(value, this.offset);
    this.offset += 1;
  }

  u16(value: number): void {
    this.out.writeUInt16LE(value, this.offset);
    this.offset += 2;
  }

  u32(value: number): void {
    this.out.writeUInt32LE(value, this.offset);
    this.offset += 4;
  }

  /** A latin1 string after its length (`lengthBytes` wide); its size was checked by `stringBytes`. */
  string(value: string, lengthBytes: 1 | 2): void {
    if (lengthBytes === 1) this.u8(value.length);
    else this.u16(value.length);
    this.offset += this.out.write(value, this.offset, 'latin1');
  }

  bytes(value: Uint8Array): void {
    this.out.set(value, this.offset);
    this.offset += value.length;
  }
}

/** The bytes a latin1 string takes after its length prefix; too long for the prefix is refused. */
function stringBytes(value: string, lengthBytes: 1 | 2): number {
  // latin1 takes one byte per UTF-16 unit (a unit above 0xff keeps only its low byte, as Node does).
  if (value.length >= 2 ** (8 * lengthBytes)) throw new ForwardFrameError(`a field of ${value.length} bytes is too long`);
  return lengthBytes + value.length;
}

export function encodeForwardRequest(request: ForwardedRequest): Buffer {
  let size = 1 + 4 + 4 + 1 + 1 + stringBytes(request.path, 2);
  let fields = 0;
  if (request.authorization !== undefined) {
    fields |= HAS_AUTHORIZATION;
    size += stringBytes(request.authorization, 2);
  }
  if (request.callerRole !== undefined) {
    fields |= HAS_ROLE;
    size += stringBytes(request.callerRole, 1);
  }
  if (request.session !== undefined) {
    fields |= HAS_SESSION;
    size += stringBytes(request.session, 2);
  }
  if (request.sequence !== undefined) {
    fields |= HAS_SEQUENCE;
    size += stringBytes(request.sequence, 2);
  }
  if (request.body !== undefined) {
    fields |= HAS_BODY;
    size += 4 + request.body.length;
  }
  const out = new Writer(size);
  out.u8(FORWARD_REQUEST);
  out.u32(request.id);
  out.u32(Math.max(1, Math.min(0xffffffff, Math.floor(request.timeoutMs))));
  out.u8(METHODS.indexOf(request.method) + 1);
  out.u8(fields);
  out.string(request.path, 2);
  if (request.authorization !== undefined) out.string(request.authorization, 2);
  if (request.callerRole !== undefined) out.string(request.callerRole, 1);
  if (request.session !== undefined) out.string(request.session, 2);
  if (request.sequence !== undefined) out.string(request.sequence, 2);
  if (request.body !== undefined) {
    out.u32(request.body.length);
    out.bytes(request.body);
  }
  return out.out;
}

export function encodeForwardReply(reply: ForwardedReplyFrame): Buffer {
  const names = Object.keys(reply.headers);
  if (names.length > 255) throw new ForwardFrameError('a reply has at most 255 headers');
  let size = 1 + 4 + 2 + 1 + 4 + reply.body.length;
  for (const name of names) size += stringBytes(name, 1) + stringBytes(reply.headers[name] as string, 2);
  const out = new Writer(size);
  out.u8(FORWARD_REPLY);
  out.u32(reply.id);
  out.u16(reply.status);
  out.u8(names.length);
  for (const name of names) {
    out.string(name, 1);
    out.string(reply.headers[name] as string, 2);
  }
  out.u32(reply.body.length);
  out.bytes(reply.body);
  return out.out;
}

/** A frame of only its type and id: hello, hello-ack, retry over HTTP. */
export function encodeForwardSignal(
  type: typeof FORWARD_HELLO | typeof FORWARD_HELLO_ACK | typeof FORWARD_RETRY_OVER_HTTP, id: number,
): Buffer {
  const out = Buffer.allocUnsafe(5);
  out.writeUInt8(type, 0);
  out.writeUInt32LE(id, 1);
  return out;
}

/** Reads a frame front to back; any read past the end is a ForwardFrameError. */
class Reader {
  private offset = 0;
  private readonly bytes: Buffer;

  constructor(bytes: Uint8Array) {
    this.bytes = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  integer(width: 1 | 2 | 4): number {
    this.need(width);
    const at = this.offset;
    this.offset += width;
    if (width === 1) return this.bytes.readUInt8(at);
    return width === 2 ? this.bytes.readUInt16LE(at) : this.bytes.readUInt32LE(at);
  }

  string(lengthBytes: 1 | 2): string {
    const length = this.integer(lengthBytes);
    this.need(length);
    const text = this.bytes.toString('latin1', this.offset, this.offset + length);
    this.offset += length;
    return text;
  }

  /** A copy: the frame's bytes are only lent until the handler returns. */
  take(length: number): Buffer {
    this.need(length);
    const copy = Buffer.from(this.bytes.subarray(this.offset, this.offset + length));
    this.offset += length;
    return copy;
  }

  end(): void {
    if (this.offset !== this.bytes.length) {
      throw new ForwardFrameError(`${this.bytes.length - this.offset} bytes after the end of the frame`);
    }
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.bytes.length) throw new ForwardFrameError('the frame ends inside a field');
  }
}

/** The frame in `bytes`, checked; a ForwardFrameError for anything malformed. */
export function decodeForwardFrame(bytes: Uint8Array): ForwardFrame {
  const read = new Reader(bytes);
  const type = read.integer(1);
  const id = read.integer(4);
  switch (type) {
    case FORWARD_REQUEST: {
      const timeoutMs = read.integer(4);
      const methodCode = read.integer(1);
      const method = METHODS[methodCode - 1];
      if (method === undefined) throw new ForwardFrameError(`unknown method code ${methodCode}`);
      if (timeoutMs < 1) throw new ForwardFrameError('a forwarded request needs a timeout');
      const fields = read.integer(1);
      if ((fields & ~KNOWN_FIELDS) !== 0) throw new ForwardFrameError(`unknown fields 0x${fields.toString(16)}`);
      const path = read.string(2);
      const request: { -readonly [K in keyof ForwardedRequest]: ForwardedRequest[K] } = { id, timeoutMs, method, path };
      if ((fields & HAS_AUTHORIZATION) !== 0) request.authorization = read.string(2);
      if ((fields & HAS_ROLE) !== 0) request.callerRole = read.string(1);
      if ((fields & HAS_SESSION) !== 0) request.session = read.string(2);
      if ((fields & HAS_SEQUENCE) !== 0) request.sequence = read.string(2);
      if ((fields & HAS_BODY) !== 0) request.body = read.take(read.integer(4));
      read.end();
      return { type, request };
    }
    case FORWARD_REPLY: {
      const status = read.integer(2);
      // What a master answers a key request with; 1xx would not be a final answer.
      if (status < 200 || status > 599) throw new ForwardFrameError(`status ${status} is not a final HTTP status`);
      const count = read.integer(1);
      // No prototype: a header named __proto__ is just a name.
      const headers = Object.create(null) as Record<string, string>;
      for (let i = 0; i < count; i++) {
        const name = read.string(1);
        if (!HEADER_NAME.test(name)) throw new ForwardFrameError('a reply header name that is not an HTTP token');
        const value = read.string(2);
        // The forwarding node passes some headers on to its caller: nothing HTTP would refuse.
        if (!HEADER_VALUE.test(value)) throw new ForwardFrameError(`reply header ${name} has a character HTTP forbids`);
        headers[name] = value;
      }
      const body = read.take(read.integer(4));
      read.end();
      return { type, reply: { id, status, headers, body } };
    }
    case FORWARD_HELLO:
    case FORWARD_HELLO_ACK:
    case FORWARD_RETRY_OVER_HTTP:
      read.end();
      return { type, id };
    default:
      throw new ForwardFrameError(`unknown frame type ${type}`);
  }
}
