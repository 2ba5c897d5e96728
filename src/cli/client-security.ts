/**
 * The security flags every client command shares (kv put/get/del, status, members, master,
 * snapshot), each with an environment variable a shell can set once:
 *
 *   --token TOKEN  / $MULTIPAXOS_TOKEN   bearer token for nodes started with --tokens
 *   --token-file FILE / $MULTIPAXOS_TOKEN_FILE  the token read from a file (not shown by ps, unlike --token)
 *   --ca FILE      / $MULTIPAXOS_CA      CA the nodes' HTTPS certificates chain to
 *   --cert FILE    / $MULTIPAXOS_CERT    client certificate, for a TLS front that asks for one
 *   --key FILE     / $MULTIPAXOS_KEY     its key
 *
 * A flag wins over its variable. The token is never printed.
 */
import { readFileSync } from 'node:fs';
import { CommandError, UsageError, type FlagSpec, type Flags } from './flags.js';

export const CLIENT_SECURITY_FLAGS: FlagSpec = {
  token: 'string', 'token-file': 'string', ca: 'string', cert: 'string', key: 'string',
};

export const CLIENT_SECURITY_USAGE = `  --token TOKEN         bearer token for nodes that require one (default $MULTIPAXOS_TOKEN)
  --token-file FILE     the token from a file, out of sight of ps (default $MULTIPAXOS_TOKEN_FILE)
  --ca FILE             CA of the nodes' HTTPS certificates (default $MULTIPAXOS_CA)
  --cert FILE, --key FILE  client certificate and key, if asked for ($MULTIPAXOS_CERT, $MULTIPAXOS_KEY)`;

export interface ClientSecurity {
  readonly token?: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export function clientSecurityOf(flags: Flags): ClientSecurity {
  const pick = (flag: string, variable: string): string | undefined => {
    const value = (flags[flag] as string | undefined) ?? process.env[variable];
    return value === undefined || value === '' ? undefined : value;
  };
  const tokenFile = pick('token-file', 'MULTIPAXOS_TOKEN_FILE');
  if (flags.token !== undefined && flags['token-file'] !== undefined) throw new UsageError('give --token or --token-file, not both');
  let token = pick('token', 'MULTIPAXOS_TOKEN');
  if (flags.token === undefined && tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      throw new CommandError(`--token-file ${tokenFile}: ${(error as Error).message}`, 2);
    }
  }
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError('the token must be printable characters without spaces');
  }
  const [ca, cert, key] = [['ca', 'MULTIPAXOS_CA'], ['cert', 'MULTIPAXOS_CERT'], ['key', 'MULTIPAXOS_KEY']]
    .map(([flag, variable]) => {
      const path = pick(flag as string, variable as string);
      if (path === undefined) return undefined;
      try {
        return readFileSync(path);
      } catch (error) {
        throw new CommandError(`--${flag as string} ${path}: ${(error as Error).message}`, 2);
      }
    });
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together');
  return { token, ca, cert, key };
}

/** Request options and headers for one request with these settings. */
export function requestSecurity(security: ClientSecurity): {
  headers: Record<string, string>; tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
} {
  return {
    headers: security.token === undefined ? {} : { authorization: `Bearer ${security.token}` },
    tls: { ca: security.ca, cert: security.cert, key: security.key },
  };
}
