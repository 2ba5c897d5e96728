/**
 * `multipaxos members list|add|remove|change`, `multipaxos master show|drop` and `multipaxos
 * snapshot create`: talk to a running node's administration endpoint (`multipaxos node --admin
 * HOST:PORT`, or a KV node's HTTP address, which serves the same routes; snapshots are KV only).
 * Human output by default, the endpoint's JSON with --json. Exit status 1 when the node refuses,
 * with its error code.
 */
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mayCarryCredentials } from '../kv/cleartext-guard.js';
import { CLIENT_SECURITY_FLAGS, CLIENT_SECURITY_USAGE, clientSecurityOf, requestSecurity } from './client-security.js';
import { CommandError, parseFlags, UsageError, type FlagSpec, type Flags } from './flags.js';
import { parseAddress } from './peer-list.js';

const FLAGS: FlagSpec = {
  node: 'string', group: 'number', id: 'number', host: 'string', port: 'number', from: 'number', json: 'boolean',
  help: 'boolean', 'timeout-ms': 'number', ...CLIENT_SECURITY_FLAGS,
};

const SECURITY_NOTE = `
--node is HOST:PORT, or https://HOST:PORT for a node serving HTTPS (also HTTPS when a CA is given).
${CLIENT_SECURITY_USAGE}
Nodes started with --tokens need a token with the admin role for these commands.`;

export const MEMBERS_USAGE = `usage: multipaxos members list   --node HOST:PORT [--group G] [--json]
       multipaxos members add    --node HOST:PORT --id N --host H --port P [--group G] [--json]
       multipaxos members remove --node HOST:PORT --id N [--group G] [--json]
       multipaxos members change --node HOST:PORT --from N --id M --host H --port P [--group G] [--json]

Shows or changes a group's voting members through a running node's admin endpoint (the node was
started with --admin HOST:PORT). A change is proposed through the log against the membership
version that node has; if the membership changed meanwhile it fails with MEMBERSHIP_CONFLICT.${SECURITY_NOTE}`;

export const MASTER_USAGE = `usage: multipaxos master show --node HOST:PORT [--group G] [--json]
       multipaxos master drop --node HOST:PORT [--group G] [--json]

Shows the master of a group as a running node sees it, or makes that node give up its lease
(it steps down at once; the others elect a new master when the lease they granted runs out).${SECURITY_NOTE}`;

export const SNAPSHOT_USAGE = `usage: multipaxos snapshot create --node HOST:PORT [--group G] [--json]

Makes a running KV node (--node: its HTTP address) snapshot a group's state now (every group
without --group), and answers once the snapshots are durable: a restart then replays only the log
after them. Nodes also snapshot on their own (kv serve --snapshot-interval, --snapshot-every).${SECURITY_NOTE}`;

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export async function membersCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  const flags = parseFlags(rest, FLAGS);
  if (action === '--help' || flags.help === true) {
    console.log(MEMBERS_USAGE);
    return 0;
  }
  if (action === undefined) throw new UsageError('members needs an action: list, add, remove or change');
  const group = (flags.group as number | undefined) ?? 0;
  const member = (): Record<string, unknown> => ({
    id: required(flags.id, '--id'), host: required(flags.host, '--host'), port: required(flags.port, '--port'),
  });
  let reply: Reply;
  switch (action) {
    case 'list': reply = await call(flags, 'GET', `/v1/members?group=${group}`); break;
    case 'add': reply = await call(flags, 'POST', `/v1/members?group=${group}`, member()); break;
    case 'remove':
      reply = await call(flags, 'DELETE', `/v1/members/${String(required(flags.id, '--id'))}?group=${group}`);
      break;
    case 'change':
      reply = await call(flags, 'POST', `/v1/members/change?group=${group}`,
        { from: required(flags.from, '--from'), ...member() });
      break;
    default: throw new UsageError(`unknown members action "${action}" (list, add, remove, change)`);
  }
  return print(reply, flags.json === true, (body) => {
    const members = body.members as { id: number; host: string; port: number }[];
    const lines = [`group ${group}: version ${String(body.version)}, gid ${String(body.gid)}`];
    for (const { id, host, port } of members) lines.push(`  node ${id}  ${host}:${port}`);
    return lines.join('\n');
  });
}

export async function masterCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  const flags = parseFlags(rest, FLAGS);
  if (action === '--help' || flags.help === true) {
    console.log(MASTER_USAGE);
    return 0;
  }
  if (action === undefined) throw new UsageError('master needs an action: show or drop');
  const group = (flags.group as number | undefined) ?? 0;
  if (action === 'show') {
    return print(await call(flags, 'GET', `/v1/master?group=${group}`), flags.json === true, (body) => {
      const master = body.master as { nodeId: number; version: number } | null;
      if (master === null) return `group ${group}: no master (as node ${String(body.nodeId)} sees it)`;
      return `group ${group}: master is node ${master.nodeId} (version ${master.version}; ` +
        `${body.isMaster === true ? 'this node' : `seen from node ${String(body.nodeId)}`})`;
    });
  }
  if (action === 'drop') {
    return print(await call(flags, 'POST', `/v1/master/drop?group=${group}`), flags.json === true,
      (body) => `node ${String(body.nodeId)} dropped its master lease of group ${group}`);
  }
  throw new UsageError(`unknown master action "${action}" (show, drop)`);
}

export async function snapshotCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  const flags = parseFlags(rest, FLAGS);
  if (action === '--help' || flags.help === true) {
    console.log(SNAPSHOT_USAGE);
    return 0;
  }
  if (action === undefined) throw new UsageError('snapshot needs an action: create');
  if (action !== 'create') throw new UsageError(`unknown snapshot action "${action}" (create)`);
  const query = flags.group === undefined ? '' : `?group=${String(flags.group)}`;
  return print(await call(flags, 'POST', `/v1/snapshots${query}`), flags.json === true, (body) => {
    const snapshots = body.snapshots as { group: number; instanceId: number; written: boolean; bytes: number;
      totalMs: number }[];
    return snapshots.map(({ group, instanceId, written, bytes, totalMs }) => written
      ? `node ${String(body.nodeId)} group ${group}: snapshot at instance ${instanceId} ` +
        `(${(bytes / 2 ** 20).toFixed(1)} MiB, durable in ${totalMs} ms)`
      : `node ${String(body.nodeId)} group ${group}: already snapshotted at instance ${instanceId}`).join('\n');
  });
}

function print(reply: Reply, json: boolean, human: (body: Record<string, unknown>) => string): number {
  if (json) console.log(JSON.stringify(reply.body));
  if (reply.status >= 400) {
    if (!json) console.error(`error ${String(reply.body.error)}: ${String(reply.body.message)}`);
    return 1;
  }
  if (!json) console.log(human(reply.body));
  return 0;
}

function required(value: unknown, flag: string): unknown {
  if (value === undefined) throw new UsageError(`${flag} is required`);
  return value;
}

async function call(
  flags: Record<string, unknown>, method: string, path: string, body?: unknown,
): Promise<Reply> {
  const node = required(flags.node, '--node') as string;
  const explicitHttps = node.startsWith('https://');
  const { host, port } = parseAddress(node.replace(/^https?:\/\//, '').replace(/\/$/, ''), '--node');
  const security = clientSecurityOf(flags as Flags);
  const secure = explicitHttps || security.ca !== undefined;
  const { headers: authorization, tls } = requestSecurity(security);
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  if (security.token !== undefined && !mayCarryCredentials(`${secure ? 'https' : 'http'}://${hostInUrl}:${port}`)) {
    throw new UsageError(`not sending the token over plain HTTP to ${host}:${port}: use --node https://... (or --ca FILE)`);
  }
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const timeoutMs = (flags['timeout-ms'] as number | undefined) ?? 30_000;
  return await new Promise<Reply>((resolve, reject) => {
    const send = secure ? httpsRequest : request;
    const outgoing = send({
      host, port, method, path, timeout: timeoutMs, ...(secure ? tls : {}),
      headers: {
        ...authorization,
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
      },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch {
          reject(new CommandError(`the node at ${host}:${port} answered ${response.statusCode} with something that is not JSON`));
        }
      });
      // An answer cut off is aborted without an error event; without this the command would end,
      // exit status 0, having printed nothing.
      response.on('close', () => {
        if (!response.complete) {
          reject(new CommandError(`the node at ${host}:${port} closed the connection in the middle of its answer`));
        }
      });
    });
    outgoing.on('timeout', () => outgoing.destroy(new CommandError(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    outgoing.on('error', (error) => reject(new CommandError(error instanceof CommandError ? error.message
      : `cannot reach the node at ${host}:${port}: ${error.message}`)));
    outgoing.end(payload);
  });
}
