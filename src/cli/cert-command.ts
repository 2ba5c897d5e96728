/**
 * `multipaxos cert init|issue|token`: the certificates and tokens of a cluster (with openssl; see
 * src/security/cert-tool.ts and docs/security.md).
 */
import { join, resolve } from 'node:path';
import { createCa, issueClientCert, issueNodeCert } from '../security/cert-tool.js';
import { generateToken, isRole } from '../security/tokens.js';
import { CommandError, parseFlags, UsageError, type FlagSpec } from './flags.js';

const FLAGS: FlagSpec = {
  dir: 'string', name: 'string', days: 'number', node: 'number', client: 'string', hosts: 'string', out: 'string',
  role: 'string', help: 'boolean',
};

export const CERT_USAGE = `usage: multipaxos cert init  --dir DIR [--name NAME] [--days 3650]
       multipaxos cert issue --dir DIR --node ID [--hosts H1,H2] [--out DIR] [--days 825]
       multipaxos cert issue --dir DIR --client NAME --role read|write|admin [--out DIR] [--days 825]
       multipaxos cert token [--role read|write|admin]

  init    create the cluster's CA in DIR (ca.crt, and ca.key: keep it offline once nodes are issued)
  issue   a certificate signed by the CA in DIR, written as OUT/node-ID.crt and .key (OUT defaults
          to DIR). --node: a node's certificate, naming it as URI multipaxos:node:ID (what the
          transport checks against the node id a peer claims) and the hosts it serves HTTPS on
          (--hosts, default localhost,127.0.0.1). --client: a client certificate of the HTTP API
          granting --role (as URI multipaxos:role:ROLE), an alternative to a token (for clients
          only: no hosts, and not usable to serve HTTPS)
  token   print a new random token as a line of a token file: "ROLE TOKEN" (default role read)
Issuing again over existing files replaces them atomically; running nodes pick them up within
seconds (rotation). Needs the openssl command (or $MULTIPAXOS_OPENSSL).`;

export async function certCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  const flags = parseFlags(rest, FLAGS);
  if (action === '--help' || action === 'help' || flags.help === true) {
    console.log(CERT_USAGE);
    return 0;
  }
  try {
    switch (action) {
      case 'init': {
        const dir = resolve(required(flags.dir, '--dir'));
        const options = { name: flags.name as string | undefined, days: flags.days as number | undefined };
        const files = await createCa(dir, options)
          .catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'EEXIST') throw new CommandError(`${dir} already holds a CA (ca.key); use another --dir`, 1);
            throw error;
          });
        console.log(`CA created: ${files.cert} (give it to every node and client), ${files.key} (keep it secret)`);
        return 0;
      }
      case 'issue': {
        const dir = resolve(required(flags.dir, '--dir'));
        const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
        const out = resolve((flags.out as string | undefined) ?? dir);
        const options = {
          days: flags.days as number | undefined,
          hosts: flags.hosts === undefined ? undefined : (flags.hosts as string).split(',').filter((h) => h !== ''),
        };
        if ((flags.node === undefined) === (flags.client === undefined)) {
          throw new UsageError('cert issue needs one of --node ID or --client NAME');
        }
        if (flags.client !== undefined && flags.hosts !== undefined) {
          throw new UsageError('--hosts goes with --node: a client certificate names no hosts');
        }
        const files = flags.node !== undefined
          ? await issueNodeCert(ca, out, flags.node as number, options)
          : await issueClientCert(ca, out, flags.client as string,
            { days: options.days, role: clientRole(flags.role) });
        console.log(`issued ${files.cert} and ${files.key}`);
        return 0;
      }
      case 'token': {
        const role = (flags.role as string | undefined) ?? 'read';
        if (!isRole(role)) throw new UsageError('--role must be read, write or admin');
        console.log(`${role} ${generateToken()}`);
        return 0;
      }
      case undefined: throw new UsageError('cert needs an action: init, issue or token');
      default: throw new UsageError(`unknown cert action "${action}" (init, issue, token)`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof CommandError) throw error;
    throw new CommandError((error as Error).message, 1);
  }
}

function clientRole(value: unknown): 'read' | 'write' | 'admin' {
  if (typeof value !== 'string' || !isRole(value)) throw new UsageError('--client needs --role read, write or admin');
  return value;
}

function required(value: unknown, flag: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(`${flag} is required`);
  return value;
}
