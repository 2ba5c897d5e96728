/**
 * Bearer tokens of the HTTP API and their roles, from a token file: one `ROLE TOKEN` per line
 * (`#` at the start of a line or after a space starts a comment; a `#` inside a token is part of
 * it), ROLE one of read, write, admin:
 *
 *   admin  3q2+7w...   # the operator
 *   write  Zm9v...     # the application
 *
 * Roles nest: `read` may GET keys (stale or not) and /status and /metrics; `write` may also PUT and
 * DELETE keys; `admin` may also use /v1/members, /v1/master and /v1/snapshots. Only SHA-256 digests
 * of the tokens are kept in memory, and a presented token is compared with every one of them in
 * constant time (crypto.timingSafeEqual over fixed-length digests, no early exit), so neither its
 * length nor how much of it matches shows in the timing. Tokens are never logged. The file is
 * polled (mtime, size, inode) and reloaded when it changes; a file that no longer parses keeps the
 * previous tokens (logged once, without its contents). A file that others than its owner may read
 * is used, with a warning: its tokens are secrets.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '../runtime/interfaces.js';

export type Role = 'read' | 'write' | 'admin';

const RANK: Readonly<Record<Role, number>> = { read: 1, write: 2, admin: 3 };
/** Shorter tokens are refused when the file is read: they could be guessed. */
export const MIN_TOKEN_LENGTH = 16;

export function isRole(value: string): value is Role {
  return Object.hasOwn(RANK, value);
}

/** Whether `role` may do what `needed` allows. */
export function allows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** A new random token (256 bits, base64url). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

interface Entry {
  readonly digest: Buffer;
  readonly role: Role;
}

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Parse a token file's text; errors name the line, never its token. */
export function parseTokens(text: string, source: string): Entry[] {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const content = line.replace(/(^|\s)#.*$/, '').trim();
    if (content === '') return;
    const [role, token, extra] = content.split(/\s+/);
    const where = `${source} line ${index + 1}`;
    if (role === undefined || !isRole(role)) throw new Error(`${where}: the role must be read, write or admin`);
    if (token === undefined || extra !== undefined) throw new Error(`${where}: expected "ROLE TOKEN"`);
    if (token.length < MIN_TOKEN_LENGTH) throw new Error(`${where}: a token must be at least ${MIN_TOKEN_LENGTH} characters`);
    entries.push({ role, digest: digestOf(token) });
  });
  return entries;
}

export class TokenStore {
  private entries: Entry[];
  private signature: string;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  private constructor(readonly path: string, private readonly logger: Logger | undefined) {
    this.signature = signatureOf(path);
    this.entries = parseTokens(readText(path), path);
    if ((statSync(path).mode & 0o077) !== 0) {
      logger?.warn('the token file may be read by others than its owner: chmod 600 it', { path });
    }
  }

  /** Reads the file now (throws when it is missing or malformed) and polls it every `reloadIntervalMs`. */
  static open(path: string, options: { reloadIntervalMs?: number; logger?: Logger } = {}): TokenStore {
    const store = new TokenStore(path, options.logger);
    const interval = options.reloadIntervalMs ?? 2_000;
    if (interval > 0) {
      store.timer = setInterval(() => store.poll(), interval);
      store.timer.unref();
    }
    return store;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The role of the token in an `Authorization: Bearer TOKEN` header, or undefined. */
  authenticate(authorization: string | undefined): Role | undefined {
    if (authorization === undefined) return undefined;
    const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
    if (match === null) return undefined;
    const digest = digestOf(match[1] as string);
    let found: Role | undefined;
    // Every entry is compared, whatever matched, so the time taken does not tell which one did.
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry.role;
    }
    return found;
  }

  poll(): boolean {
    let signature: string;
    try {
      signature = signatureOf(this.path);
      if (signature === this.signature) return false;
      this.entries = parseTokens(readText(this.path), this.path);
    } catch (error) {
      if (!this.failing) {
        this.logger?.warn('the token file changed but cannot be read; keeping the previous tokens',
          { path: this.path, error: error instanceof Error ? error.message : String(error) });
      }
      this.failing = true;
      return false;
    }
    this.signature = signature;
    this.failing = false;
    this.logger?.info('token file reloaded', { path: this.path, tokens: this.entries.length });
    return true;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the token file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function signatureOf(path: string): string {
  const stat = statSync(path);
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}
