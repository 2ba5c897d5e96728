/**
 * A cluster's certificate authority and its node certificates, made with the `openssl` command
 * (present on Debian, macOS and most Linux images; no ASN.1 is written here).
 *
 * A node certificate names its node in a SAN URI `multipaxos:node:<id>` (NODE_ID_URI_PREFIX): the
 * transport accepts a peer only if its certificate chains to the cluster CA and names the node id
 * the peer claims in the transport handshake. The certificate also names the hosts it serves HTTPS
 * on (DNS and IP SANs), so that clients and forwarding nodes can check the HTTP endpoint's name as
 * usual. Keys are ECDSA P-256 (cheap handshakes), made by Node's crypto; certificates are signed by
 * `openssl ca` with explicit start and end dates, which also lets tests make expired certificates.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NODE_ID_URI_PREFIX, ROLE_URI_PREFIX } from './node-identity.js';

const run = promisify(execFile);
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface IssueOptions {
  /** Hosts the certificate serves (DNS names or IP addresses). Default: localhost and 127.0.0.1. */
  readonly hosts?: readonly string[];
  /** Validity start and end; default from one hour ago (clock skew) to `days` from now. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Default 825 (the longest that common TLS clients accept for a server certificate). */
  readonly days?: number;
}

/** The openssl binary: $MULTIPAXOS_OPENSSL, or `openssl` on the PATH. */
function opensslPath(): string {
  return process.env.MULTIPAXOS_OPENSSL ?? 'openssl';
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run(opensslPath(), args, { timeout: 30_000 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error('the openssl command is needed to make certificates: install it (apt-get install openssl) '
        + 'or set MULTIPAXOS_OPENSSL to its path', { cause: error });
    }
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
}

function newKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** A self-signed CA in `dir` (ca.crt, ca.key). Refuses to overwrite an existing one. */
export async function createCa(dir: string, options: { name?: string; days?: number } = {}): Promise<CertFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await writeFile(files.key, newKeyPem(), { mode: 0o600, flag: 'wx' });
  const subject = `/CN=${sanitize(options.name ?? 'multipaxos cluster CA')}`;
  try {
    await openssl(['req', '-x509', '-new', '-sha256', '-key', files.key, '-out', files.cert,
      '-days', String(options.days ?? 3650), '-subj', subject,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  } catch (error) {
    // The key without its certificate would make the next `cert init` fail (it never overwrites a CA).
    await rm(files.key, { force: true });
    await rm(files.cert, { force: true });
    throw error;
  }
  return files;
}

/** A certificate for node `nodeId`, signed by `ca`, written as `<outDir>/node-<id>.crt|.key`. */
export async function issueNodeCert(ca: CertFiles, outDir: string, nodeId: number, options: IssueOptions = {}):
  Promise<CertFiles> {
  if (!Number.isSafeInteger(nodeId) || nodeId < 1 || nodeId > 0xffff_ffff) throw new Error(`bad node id ${nodeId}`);
  return issue(ca, outDir, `node-${nodeId}`, `multipaxos node ${nodeId}`,
    [`URI:${NODE_ID_URI_PREFIX}${nodeId}`, ...hostNames(options.hosts)], options, 'serverAuth,clientAuth');
}

/**
 * A client certificate of the HTTP API, granting `role` (SAN URI `multipaxos:role:<role>`). It names
 * no node id, so it cannot join the cluster; and no host, with the clientAuth usage only, so it
 * cannot serve HTTPS as a node would either.
 */
export async function issueClientCert(ca: CertFiles, outDir: string, name: string,
  options: Omit<IssueOptions, 'hosts'> & { role?: 'read' | 'write' | 'admin' } = {}): Promise<CertFiles> {
  if ((options as IssueOptions).hosts !== undefined) throw new Error('a client certificate names no hosts');
  const sans = options.role === undefined ? [] : [`URI:${ROLE_URI_PREFIX}${options.role}`];
  return issue(ca, outDir, `client-${sanitize(name).replace(/[^A-Za-z0-9_-]/g, '_')}`, name, sans, options, 'clientAuth');
}

function hostNames(hosts: readonly string[] | undefined): string[] {
  return (hosts ?? ['localhost', '127.0.0.1']).map((host) => {
    if (!/^[A-Za-z0-9.:_-]+$/.test(host)) throw new Error(`bad host name "${host}"`);
    return isIP(host) === 0 ? `DNS:${host}` : `IP:${host}`;
  });
}

async function issue(ca: CertFiles, outDir: string, baseName: string, commonName: string, sans: readonly string[],
  options: IssueOptions, usage: 'serverAuth,clientAuth' | 'clientAuth'): Promise<CertFiles> {
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(tmpdir(), 'multipaxos-cert-'));
  try {
    const key = join(work, 'key.pem');
    const csr = join(work, 'req.csr');
    const cert = join(work, 'cert.pem');
    await writeFile(key, newKeyPem(), { mode: 0o600 });
    await openssl(['req', '-new', '-sha256', '-key', key, '-out', csr, '-subj', `/CN=${sanitize(commonName)}`]);
    const now = Date.now();
    const notBefore = options.notBefore ?? new Date(now - 60 * 60 * 1000);
    const notAfter = options.notAfter ?? new Date(now + (options.days ?? 825) * DAY_MS);
    const config = join(work, 'ca.cnf');
    await writeFile(join(work, 'index.txt'), '');
    await writeFile(join(work, 'serial'), `${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}\n`);
    await writeFile(config, caConfig(work, sans, usage));
    await openssl(['ca', '-batch', '-notext', '-config', config, '-cert', ca.cert, '-keyfile', ca.key,
      '-in', csr, '-out', cert, '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter),
      '-extensions', 'issued']);
    const files = { cert: join(outDir, `${baseName}.crt`), key: join(outDir, `${baseName}.key`) };
    // Written beside and renamed over: a node watching these files never reads half of one.
    await replaceFile(files.key, await readFile(key), 0o600);
    await replaceFile(files.cert, await readFile(cert), 0o644);
    return files;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function replaceFile(path: string, data: Buffer, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, data, { mode });
  await rename(temporary, path);
}

function caConfig(dir: string, sans: readonly string[], usage: string): string {
  return [
    '[ ca ]', 'default_ca = issuing',
    '[ issuing ]', `dir = ${dir}`, 'database = $dir/index.txt', 'new_certs_dir = $dir', 'serial = $dir/serial',
    'default_md = sha256', 'policy = any_name', 'unique_subject = no', 'copy_extensions = none',
    '[ any_name ]', 'commonName = supplied',
    '[ issued ]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature',
    `extendedKeyUsage = ${usage}`, 'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid', ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []), '',
  ].join('\n');
}

/** YYYYMMDDHHMMSSZ (GeneralizedTime), as `openssl ca -startdate/-enddate` take it. */
function asn1Time(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/** Subject fields go through openssl's `/CN=...` syntax: keep them to characters that cannot escape it. */
function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9 ._@-]/g, '_').slice(0, 64);
}
