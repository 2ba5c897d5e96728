/**
 * `multipaxos kv put|get|del` and `multipaxos status`: the KV client on the command line. The
 * endpoints default to $MULTIPAXOS_ENDPOINTS, then to the ones `multipaxos cluster up` uses by
 * default, so after `npm start` the commands work without flags. Exit status: 0 done, 1 refused
 * or failed (the error code and whether a write may have been applied are printed), 3 for `get` or
 * `del` of a key that is not set (`del` then changes nothing).
 */
import { open } from 'node:fs/promises';
import { KvClient } from '../kv/client.js';
import { KvWatchError } from '../kv/client-watch.js';
import { MAX_KV_VALUE_BYTES } from '../kv/kv-command.js';
import { KvError } from '../kv/kv-error.js';
import { CLIENT_SECURITY_FLAGS, CLIENT_SECURITY_USAGE, clientSecurityOf } from './client-security.js';
import { MAX_SESSION_TTL_MS } from '../runtime/session-table.js';
import { CommandError, parseCommandLine, UsageError, type FlagSpec, type Flags } from './flags.js';
import { stopSignal } from './stop-signal.js';
import { formatDuration } from './format-duration.js';
import { watchStatus } from './status-watch.js';

const FLAGS: FlagSpec = {
  endpoints: 'string', version: 'number', file: 'string', stale: 'boolean', 'timeout-ms': 'number', json: 'boolean', help: 'boolean',
  ...CLIENT_SECURITY_FLAGS,
  session: 'boolean', limit: 'number', after: 'string', cursor: 'string',
};

export const DEFAULT_BASE_PORT = 8080;
/** The deadline of a command (KvClient's default). */
const DEFAULT_CLI_TIMEOUT_MS = 10_000;
export const DEFAULT_ENDPOINTS = [1, 2, 3].map((index) => `http://127.0.0.1:${DEFAULT_BASE_PORT + index}`);

export const KV_CLIENT_USAGE = `usage: multipaxos kv put KEY VALUE [--version N] [common options]
       multipaxos kv put KEY --file PATH [--version N] [common options]
       multipaxos kv put KEY - [--version N] [common options]      (the value from standard input)
       multipaxos kv get KEY [--stale] [common options]
       multipaxos kv del KEY [--version N] [common options]
       multipaxos kv list [PREFIX] [--limit N] [--after KEY] [--stale] [common options]
       multipaxos kv watch [PREFIX] [--cursor C] [--json] [--endpoints URL,URL]

  put         set KEY to VALUE; with --version N only if the key is at version N (0: never written).
              --file PATH takes the value from a file, - from standard input (whole, as is: a
              trailing newline is part of it); it must be UTF-8 text of at most 1 MiB
  get         read KEY on its group's master (linearizable); --stale reads any node's local state
  del         delete KEY (it keeps its version); with --version N only if it is at version N;
              a KEY that is not set is left as it is (exit 3)
  list        the keys that start with PREFIX (default: all), in order, one "KEY<TAB>VERSION<TAB>VALUE"
              line each (--json: one page, {"items", "more", "next"}); every key unless --limit N
              (one page of at most N, 1 to 1000; --after KEY starts after KEY, as "next" says).
              Each group's part is read on its master (linearizable per group); --stale: one node's
              local state
  watch       print every change of the keys that start with PREFIX (default: all) as it happens,
              one "KEY<TAB>VERSION<TAB>VALUE" line each ("KEY<TAB>VERSION<TAB>(deleted)" for a
              delete; --json: one JSON event a line, with its "cursor"), until Ctrl-C (exit 0).
              Each key's changes come in version order; it resumes on another node if one fails.
              --cursor C starts after an event's cursor. Exit 1 when none of the endpoints holds
              the changes after the cursor any longer (compacted: list again), a node dropped a
              watcher too slow, or no node served the watch for 60 s (unavailable)
  put and del go through a session (exactly once): a write whose outcome is unknown (a master that
  died mid-request) is sent again with its session number until the timeout and applied at most
  once; --session=false sends it once and reports that it may have been applied. The session
  lives twice the timeout (it is not used again)
common options:
  --endpoints URL,URL   HTTP endpoints of the cluster (default $MULTIPAXOS_ENDPOINTS, else
                        ${DEFAULT_ENDPOINTS.join(',')})
  --timeout-ms T        give up after T ms (default 10000)
  --json                print the answer as JSON
${CLIENT_SECURITY_USAGE}
Exit status: 0 done, 1 failed, 2 bad usage, 3 the key is not set (get, del).`;

const STATUS_FLAGS: FlagSpec = { ...FLAGS, watch: 'boolean', 'interval-ms': 'number' };

export const STATUS_USAGE = `usage: multipaxos status [--endpoints URL,URL] [--timeout-ms T] [--json] [--token T] [--ca FILE]
       multipaxos status --watch [--interval-ms 2000] [--endpoints URL,URL] [--timeout-ms T] [--token T] [--ca FILE]

Shows every node of the cluster: whether it answers, how long it has been up, and per group its
instance, its master, whether it serves (holds the lease with its fence current) and when the
master's lease expires as that node sees it. --json adds "ok" and "problems" to the nodes' /status.
Exit status: 0 every node answers and every group has a master, 1 otherwise (each problem is
named on standard error), 2 bad usage.

--watch redraws the cluster as the first node that answers sees it (its /v1/cluster-status, the
status page's view: nodes, masters and leases, instances and how far each node trails, the log
kept and cleaned, the last minute's rates and latency, recent events) every --interval-ms, until
Ctrl-C (exit 0). It clears the screen between views on a terminal, and prints one view after the
other otherwise; with --json, one line of JSON a view (the /v1/cluster-status answer).`;

export async function kvClientCommand(action: string, argv: readonly string[]): Promise<number> {
  const { flags, positionals } = parseCommandLine(argv, FLAGS);
  if (flags.help === true) {
    console.log(KV_CLIENT_USAGE);
    return 0;
  }
  // Silently ignored, it would read as if a put or list went "after" a watch cursor.
  if (flags.cursor !== undefined && action !== 'watch') throw new UsageError(`--cursor is for watch, not ${action}`);
  const client = newClient(endpointsOf(flags), flags['timeout-ms'] as number | undefined, flags, flags.session !== false);
  const json = flags.json === true;
  const version = flags.version as number | undefined;
  try {
    switch (action) {
      case 'put': {
        const file = flags.file as string | undefined;
        const [key, given] = (file === undefined ? expectArguments(positionals, ['KEY', 'VALUE'])
          : expectArguments(positionals, ['KEY'], ' (with --file)')) as [string, string | undefined];
        const value = file !== undefined ? await readValue(file) : given === '-' ? await readValue('-') : given as string;
        const written = await client.put(key, value, { version });
        console.log(json ? JSON.stringify(written) : `OK ${key} version ${written.version}`);
        return 0;
      }
      case 'get': {
        if (flags.file !== undefined) throw new UsageError('--file is for put');
        const [key] = expectArguments(positionals, ['KEY']) as [string];
        if (version !== undefined) throw new UsageError('get takes no --version');
        const read = await client.get(key, { stale: flags.stale === true });
        if (json) console.log(JSON.stringify(read));
        else if (read.value === null) console.error(`${key} is not set (version ${read.version})`);
        else console.log(read.value);
        return read.value === null ? 3 : 0;
      }
      case 'list': {
        if (flags.file !== undefined || version !== undefined) throw new UsageError('list takes no --file or --version');
        if (positionals.length > 1) throw new UsageError(`list takes at most one PREFIX; got "${positionals[1]}"`);
        const prefix = positionals[0] ?? '';
        const limit = flags.limit as number | undefined;
        const stale = flags.stale === true;
        const after = flags.after as string | undefined;
        if (limit !== undefined && (limit < 1 || limit > 1000)) throw new UsageError('--limit is from 1 to 1000');
        if (json || limit !== undefined) {
          const page = await client.list(prefix, { limit, after, stale });
          if (json) console.log(JSON.stringify(page));
          else for (const item of page.items) console.log(`${item.key}\t${item.version}\t${item.value ?? ''}`);
          return 0;
        }
        for await (const item of client.scan(prefix, { stale, after })) {
          console.log(`${item.key}\t${item.version}\t${item.value ?? ''}`);
        }
        return 0;
      }
      case 'watch':
        return await watchCommand(client, positionals, flags, json);
      case 'del': case 'delete': {
        if (flags.file !== undefined) throw new UsageError('--file is for put');
        const [key] = expectArguments(positionals, ['KEY']) as [string];
        const deleted = await client.delete(key, { version });
        if (json) console.log(JSON.stringify(deleted));
        else if (deleted.deleted) console.log(`OK ${key} deleted, version ${deleted.version}`);
        else console.error(`${key} is not set (version ${deleted.version}); nothing deleted`);
        return deleted.deleted ? 0 : 3;
      }
      default:
        throw new UsageError(`unknown kv action "${action}" (serve, put, get, del, list)`);
    }
  } catch (error) {
    if (!(error instanceof KvError)) throw error;
    if (json) console.log(JSON.stringify(error.toJSON()));
    else {
      // Say "may have been applied" once: many messages already do.
      const hint = !error.mayHaveBeenApplied ? ''
        : error.message.includes('may have been applied') ? ' (read the key to find out)'
          : ' (the write may have been applied: read the key to find out)';
      console.error(`error ${error.code}: ${error.message}${hint}`);
    }
    return 1;
  } finally {
    client.close();
  }
}

/** `kv watch`: changes until Ctrl-C (exit 0), or exit 1 with the reason the watch cannot go on. */
async function watchCommand(
  client: KvClient, positionals: readonly string[], flags: Flags, json: boolean,
): Promise<number> {
  if (flags.file !== undefined || flags.version !== undefined || flags.stale !== undefined ||
    flags.limit !== undefined || flags.after !== undefined) {
    throw new UsageError('watch takes PREFIX, --cursor, --json and --endpoints only');
  }
  if (positionals.length > 1) throw new UsageError(`watch takes at most one PREFIX; got "${positionals[1]}"`);
  const abort = new AbortController();
  void stopSignal({ unrefChannel: true }).requested.then(() => abort.abort());
  const watch = client.watch(positionals[0] ?? '', { cursor: flags.cursor as string | undefined, signal: abort.signal });
  try {
    for await (const event of watch) {
      if (json) console.log(JSON.stringify(event));
      else console.log(`${event.key}\t${event.version}\t${event.deleted ? '(deleted)' : event.value ?? ''}`);
    }
    return 0;
  } catch (error) {
    if (!(error instanceof KvWatchError)) throw error;
    if (json) console.log(JSON.stringify({ error: error.reason, message: error.message, cursor: error.cursor }));
    else console.error(`${error.message}${error.cursor === undefined ? '' : ` (cursor ${error.cursor})`}`);
    return 1;
  }
}

export async function statusCommand(argv: readonly string[]): Promise<number> {
  const { flags, positionals } = parseCommandLine(argv, STATUS_FLAGS);
  if (flags.help === true) {
    console.log(STATUS_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`status takes no arguments; got "${positionals[0]}"`);
  const endpoints = endpointsOf(flags);
  if (flags.watch === true) {
    const intervalMs = (flags['interval-ms'] as number | undefined) ?? 2_000;
    if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 3_600_000) {
      throw new UsageError(`--interval-ms must be a whole number of ms from 100 to 3600000; got ${intervalMs}`);
    }
    // A client checks the endpoints: a bad one is a usage error now, not a failure each interval.
    newClient(endpoints, undefined, flags).close();
    return await watchStatus({
      endpoints, intervalMs, timeoutMs: (flags['timeout-ms'] as number | undefined) ?? 2_000, json: flags.json === true,
      security: clientSecurityOf(flags),
    });
  }
  if (flags['interval-ms'] !== undefined) throw new UsageError('--interval-ms goes with --watch');
  const client = newClient(endpoints, (flags['timeout-ms'] as number | undefined) ?? 2_000, flags);
  try {
    const nodes = await Promise.all(endpoints.map(async (endpoint) => {
      try {
        return { endpoint, up: true, status: await client.status(endpoint) };
      } catch (error) {
        return { endpoint, up: false, error: error instanceof Error ? error.message : String(error) };
      }
    }));
    const problems = problemsOf(nodes);
    if (flags.json === true) console.log(JSON.stringify({ ok: problems.length === 0, problems, nodes }));
    else {
      for (const node of nodes) console.log(describeNode(node));
      for (const problem of problems) console.error(`problem: ${problem}`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    client.close();
  }
}

interface GroupLine {
  readonly group: number;
  readonly nowInstanceId: number;
  readonly master?: { readonly nodeId: number } | null;
  readonly leaseExpiresInMs?: number | null;
  readonly serving: boolean;
}

interface NodeLine {
  readonly endpoint: string;
  readonly up: boolean;
  readonly status?: Record<string, unknown>;
  readonly error?: string;
}

export function describeNode(node: NodeLine): string {
  if (!node.up || node.status === undefined) return `${node.endpoint}  down (${node.error ?? 'no answer'})`;
  const groups = (node.status.groups as GroupLine[] | undefined) ?? [];
  const parts = groups.map((group) => `g${group.group}: instance ${group.nowInstanceId}, ` +
    `master ${group.master?.nodeId ?? 'none'}${group.serving ? ' (this node)' : ''}` +
    (typeof group.leaseExpiresInMs === 'number' ? `, lease expires in ${formatDuration(group.leaseExpiresInMs)}` : ''));
  const uptime = node.status.uptimeSeconds;
  return `node ${String(node.status.nodeId)}  ${node.endpoint}` +
    `${typeof uptime === 'number' ? `  up ${formatDuration(uptime * 1000)}` : ''}  ${parts.join(' | ')}`;
}

/** What makes the cluster unhealthy: a node that does not answer, a group no answering node sees a master of. */
export function problemsOf(nodes: readonly NodeLine[]): string[] {
  const problems = nodes.filter((node) => !node.up).map((node) => `${node.endpoint} does not answer`);
  const groups = new Map<number, boolean>();
  for (const node of nodes) {
    for (const group of (node.status?.groups as GroupLine[] | undefined) ?? []) {
      const hasMaster = group.master !== null && group.master !== undefined;
      groups.set(group.group, (groups.get(group.group) ?? false) || hasMaster);
    }
  }
  for (const [group, hasMaster] of [...groups].sort((a, b) => a[0] - b[0])) {
    if (!hasMaster) problems.push(`group ${group} has no master`);
  }
  return problems;
}

/** A client for the command line: a bad endpoint or timeout is a usage error. */
function newClient(
  endpoints: readonly string[], timeoutMs: number | undefined, flags: Flags, sessions = false,
): KvClient {
  const security = clientSecurityOf(flags);
  try {
    // A command's session serves one write and is never used again: it only has to outlive that
    // write's retries. A short time to live lets it expire soon, so a shell loop of puts does not fill
    // the group's session table with idle sessions and push real clients' out.
    const sessionTtlMs = Math.min(MAX_SESSION_TTL_MS, 2 * Math.ceil(timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS));
    return new KvClient({
      endpoints, timeoutMs: timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS, sessions, sessionTtlMs, ...security,
    });
  } catch (error) {
    if (error instanceof KvError) throw new UsageError(error.message);
    throw error;
  }
}

export function endpointsOf(flags: Flags): string[] {
  const given = flags.endpoints as string | undefined;
  const text = given ?? process.env.MULTIPAXOS_ENDPOINTS;
  if (text === undefined || text.length === 0) return DEFAULT_ENDPOINTS;
  const source = given === undefined ? '$MULTIPAXOS_ENDPOINTS' : '--endpoints';
  const endpoints = text.split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (endpoints.length === 0) throw new UsageError(`${source} lists no endpoint`);
  for (const endpoint of endpoints) checkEndpoint(endpoint, source);
  return endpoints;
}

/** An endpoint must be http[s]://HOST:PORT (a bad one is a usage error now, not a TIMEOUT later). */
function checkEndpoint(endpoint: string, source: string): void {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  const ok = url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0 && /:\d+\/?$/.test(endpoint) &&
    url.username === '' && url.password === '' && url.pathname === '/' && url.search === '' && url.hash === '';
  if (!ok) throw new UsageError(`${source}: "${endpoint}" is not an http://HOST:PORT URL (or https://HOST:PORT)`);
}

function expectArguments(positionals: readonly string[], names: readonly string[], context = ''): string[] {
  if (positionals.length !== names.length) {
    throw new UsageError(`expected ${names.join(' ')}${context}, got ${positionals.length} argument(s)`);
  }
  return [...positionals];
}

/**
 * A value from a file, or standard input for "-": UTF-8 text of at most MAX_KV_VALUE_BYTES bytes,
 * taken as is (a byte order mark or trailing newline is part of it). Reads at most one byte past
 * the limit, so a huge input is refused without being read whole.
 */
async function readValue(path: string): Promise<string> {
  const what = path === '-' ? 'standard input' : path;
  const chunks: Buffer[] = [];
  let bytes = 0;
  const take = (chunk: Buffer): boolean => {
    chunks.push(chunk);
    bytes += chunk.length;
    return bytes <= MAX_KV_VALUE_BYTES;
  };
  try {
    if (path === '-') {
      for await (const chunk of process.stdin) if (!take(chunk as Buffer)) break;
      process.stdin.destroy();
    } else {
      const handle = await open(path, 'r');
      try {
        for (;;) {
          const buffer = Buffer.alloc(64 * 1024);
          const { bytesRead } = await handle.read(buffer, 0, buffer.length);
          if (bytesRead === 0 || !take(buffer.subarray(0, bytesRead))) break;
        }
      } finally {
        await handle.close();
      }
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CommandError(`cannot read ${what}: ${code === 'ENOENT' ? 'no such file'
      : code === 'EISDIR' ? 'it is a directory' : (error as Error).message}`);
  }
  if (bytes > MAX_KV_VALUE_BYTES) {
    throw new CommandError(`${what} holds more than ${MAX_KV_VALUE_BYTES} bytes (1 MiB), the limit of a value`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new CommandError(`${what} is not valid UTF-8 text (a value is text)`);
  }
}
