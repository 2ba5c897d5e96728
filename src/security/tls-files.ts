/**
 * A node's TLS files (CA bundle, certificate, private key), loaded at start and reloaded while the
 * node runs when they change (certificate rotation). The files are polled (mtime, size, inode every
 * `reloadIntervalMs`) rather than watched: fs.watch misses files replaced by rename, which is how
 * certificates are usually installed. A reload that fails (say the certificate was replaced and its
 * key not yet, so they do not match) keeps the previous material, logs once, and is tried again at
 * the next poll. Listeners hear of every successful reload, and whether the CA changed (connections
 * whose peer no longer verifies against the new CA must then be closed).
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '../runtime/interfaces.js';

export interface TlsFileOptions {
  /** PEM file of the CA certificate(s) peers' certificates must chain to. */
  readonly ca: string;
  /** PEM file of this node's certificate (it may carry intermediates after it). */
  readonly cert: string;
  /** PEM file of this node's private key. */
  readonly key: string;
  /** How often the files are checked for changes (default 2,000 ms; 0: never reloaded). */
  readonly reloadIntervalMs?: number;
}

/** What Node's TLS takes, read from the files. */
export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The same, as one context for outgoing connections. */
  readonly context: SecureContext;
  readonly caCertificates: readonly X509Certificate[];
  readonly certificate: X509Certificate;
}

export interface TlsReload {
  readonly material: TlsMaterial;
  readonly caChanged: boolean;
}

export const DEFAULT_TLS_RELOAD_MS = 2_000;

export class TlsFiles {
  private material: TlsMaterial;
  private signature: string;
  /** A changed signature seen at the last poll, loaded only if the next poll sees it again. */
  private settling: string | undefined;
  private readonly listeners: ((reload: TlsReload) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  /** Successful reloads since start. */
  reloads = 0;

  private constructor(readonly options: TlsFileOptions, private readonly logger: Logger | undefined) {
    this.signature = signatureOf(options);
    this.material = readMaterial(options);
  }

  /** Reads and checks the files now (throws a clear error when they are missing or do not fit). */
  static open(options: TlsFileOptions, logger?: Logger): TlsFiles {
    const files = new TlsFiles(options, logger);
    const interval = options.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_MS;
    if (interval > 0) {
      files.timer = setInterval(() => files.poll(), interval);
      files.timer.unref();
    }
    return files;
  }

  get current(): TlsMaterial {
    return this.material;
  }

  onReload(listener: (reload: TlsReload) => void): void {
    this.listeners.push(listener);
  }

  /** Check the files now (what the timer does); true when new material was loaded. */
  poll(): boolean {
    let signature: string;
    try {
      signature = signatureOf(this.options);
    } catch (error) {
      this.reportFailure(error);
      return false;
    }
    if (signature === this.signature) {
      this.settling = undefined;
      return false;
    }
    // A file being written in place changes between polls: load it only once it has stayed the
    // same for a whole interval, so a half-written CA bundle is never taken for the new one (it
    // would close healthy connections). Replacing files by rename is atomic and still preferred.
    if (signature !== this.settling) {
      this.settling = signature;
      return false;
    }
    let material: TlsMaterial;
    try {
      material = readMaterial(this.options);
    } catch (error) {
      // Left unchanged: the next poll reads the files again (a rotation may be half done).
      this.reportFailure(error);
      return false;
    }
    const caChanged = !material.ca.equals(this.material.ca);
    this.material = material;
    this.signature = signature;
    this.settling = undefined;
    this.failing = false;
    this.reloads++;
    this.logger?.info('TLS files reloaded', { cert: this.options.cert, caChanged,
      validTo: material.certificate.validTo });
    for (const listener of this.listeners) listener({ material, caChanged });
    return true;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private reportFailure(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.logger?.warn('TLS files changed but cannot be loaded; keeping the previous ones', {
      cert: this.options.cert, error: error instanceof Error ? error.message : String(error),
    });
  }
}

function signatureOf(options: TlsFileOptions): string {
  return [options.ca, options.cert, options.key].map((path) => {
    const stat = statSync(path);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  }).join('|');
}

/** Reads the files and checks they make a usable context (the key matches the certificate). */
export function readMaterial(options: TlsFileOptions): TlsMaterial {
  const ca = readPem(options.ca, 'CA');
  const cert = readPem(options.cert, 'certificate');
  const key = readPem(options.key, 'key');
  const caCertificates = splitCertificates(ca, options.ca);
  const certificate = splitCertificates(cert, options.cert)[0] as X509Certificate;
  let context: SecureContext;
  try {
    context = createSecureContext({ ca, cert, key, minVersion: 'TLSv1.2' });
  } catch (error) {
    throw new Error(`TLS files ${options.cert} and ${options.key} do not make a usable pair: `
      + `${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return { ca, cert, key, context, caCertificates, certificate };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function splitCertificates(pem: Buffer, path: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${path} holds no PEM certificate`);
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch (error) {
    throw new Error(`${path} holds a certificate that does not parse: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Whether `leaf` (a connected peer's certificate) is still acceptable under `material`'s CA: issued
 * and signed by one of its certificates and within its validity. Only direct issuance is checked: a
 * peer whose certificate comes from an intermediate is reported as not verifying, so its
 * connection is closed and the next one goes through the full TLS verification.
 */
export function stillTrusted(leaf: X509Certificate, material: TlsMaterial, now = Date.now()): boolean {
  if (Date.parse(leaf.validTo) <= now || Date.parse(leaf.validFrom) > now) return false;
  return material.caCertificates.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
}
