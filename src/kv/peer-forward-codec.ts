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
 *   reply:   u16 status | u8 headers | (str8 name, str16 value)... | u32 body length, body
 *   hello, hello-ack: nothing more (a node learns that its peer speaks this protocol)
 *
 * Strings are latin1, as Node hands HTTP request lines and header values over: the caller's bytes
 * go through unchanged. Little-endian, like the transport's frames.
 */

export const FORWARD_REQUEST = 1;
export const FORWARD_REPLY = 2;
export const FORWARD_HELLO = 3;
export const FORWARD_HELLO_ACK = 4;

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
  | { readonly type: typeof FORWARD_HELLO | typeof FORWARD_HELLO_ACK; readonly id: number };

export class ForwardFrameError extends Error {}

export function isForwardMethod(method: string): method is ForwardMethod {
  return (METHODS as readonly string[]).includes(method);
}

/** A growing list of parts, written into one exactly sized buffer at the end. */
class Writer {
  private readonly parts: (number | Buffer)[] = [];
  private readonly widths: number[] = [];
  private size = 0;

  integer(value: number, bytes: 1 | 2 | 4): void {
    this.parts.push(value);
    this.widths.push(bytes);
    this.size += bytes;
  }

  string(value: string, lengthBytes: 1 | 2): void {
    const bytes = Buffer.from(value, 'latin1');
    if (bytes.length >= 2 ** (8 * lengthBytes)) throw new ForwardFrameError(`a field of ${bytes.length} bytes is too long`);
    this.integer(bytes.length, lengthBytes);
    this.bytes(bytes);
  }

  bytes(value: Buffer): void {
    this.parts.push(value);
    this.widths.push(0);
    this.size += value.length;
  }

  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.size);
    let offset = 0;
    this.parts.forEach((part, index) => {
      const width = this.widths[index] as number;
      if (typeof part === 'number') {
        if (width === 1) out.writeUInt8(part, offset);
        else if (width === 2) out.writeUInt16LE(part, offset);
        else out.writeUInt32LE(part, offset);
        offset += width;
      } else {
        part.copy(out, offset);
        offset += part.length;
      }
    });
    return out;
  }
}

export function encodeForwardRequest(request: ForwardedRequest): Buffer {
  const out = new Writer();
  out.integer(FORWARD_REQUEST, 1);
  out.integer(request.id, 4);
  out.integer(Math.max(1, Math.min(0xffffffff, Math.floor(request.timeoutMs))), 4);
  out.integer(METHODS.indexOf(request.method) + 1, 1);
  const fields = (request.authorization !== undefined ? HAS_AUTHORIZATION : 0) |
    (request.callerRole !== undefined ? HAS_ROLE : 0) | (request.session !== undefined ? HAS_SESSION : 0) |
    (request.sequence !== undefined ? HAS_SEQUENCE : 0) | (request.body !== undefined ? HAS_BODY : 0);
  out.integer(fields, 1);
  out.string(request.path, 2);
  if (request.authorization !== undefined) out.string(request.authorization, 2);
  if (request.callerRole !== undefined) out.string(request.callerRole, 1);
  if (request.session !== undefined) out.string(request.session, 2);
  if (request.sequence !== undefined) out.string(request.sequence, 2);
  if (request.body !== undefined) {
    out.integer(request.body.length, 4);
    out.bytes(request.body);
  }
  return out.finish();
}

export function encodeForwardReply(reply: ForwardedReplyFrame): Buffer {
  const out = new Writer();
  out.integer(FORWARD_REPLY, 1);
  out.integer(reply.id, 4);
  out.integer(reply.status, 2);
  const headers = Object.entries(reply.headers);
  if (headers.length > 255) throw new ForwardFrameError('a reply has at most 255 headers');
  out.integer(headers.length, 1);
  for (const [name, value] of headers) {
    out.string(name, 1);
    out.string(value, 2);
  }
  out.integer(reply.body.length, 4);
  out.bytes(reply.body);
  return out.finish();
}

export function encodeForwardHello(type: typeof FORWARD_HELLO | typeof FORWARD_HELLO_ACK, id: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out.writeUInt8(type, 0);
  out.writeUInt32LE(id, 1);
  return out;
}

/** Reads a frame front to back; any read past the end is a ForwardFrameError. */
class Reader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  integer(width: 1 | 2 | 4): number {
    this.need(width);
    const view = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.offset, width);
    this.offset += width;
    return width === 1 ? view.readUInt8(0) : width === 2 ? view.readUInt16LE(0) : view.readUInt32LE(0);
  }

  string(lengthBytes: 1 | 2): string {
    const length = this.integer(lengthBytes);
    return this.take(length).toString('latin1');
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
      if (status < 100 || status > 599) throw new ForwardFrameError(`status ${status} is not an HTTP status`);
      const count = read.integer(1);
      // No prototype: a header named __proto__ is just a name.
      const headers = Object.create(null) as Record<string, string>;
      for (let i = 0; i < count; i++) {
        const name = read.string(1);
        headers[name] = read.string(2);
      }
      const body = read.take(read.integer(4));
      read.end();
      return { type, reply: { id, status, headers, body } };
    }
    case FORWARD_HELLO:
    case FORWARD_HELLO_ACK:
      read.end();
      return { type, id };
    default:
      throw new ForwardFrameError(`unknown frame type ${type}`);
  }
}
