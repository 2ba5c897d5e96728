/**
 * `multipaxos kv serve`: run one node of the replicated KV service: a PaxosNode with the KV state
 * machine in every group and master election, and the HTTP API (src/kv/http-server.ts). Settings
 * come from flags or a JSON config file whose keys are the flag names (flags win). SIGINT and
 * SIGTERM stop it cleanly (exit 0), as does the parent going away when it was started with an IPC
 * channel (by `multipaxos cluster up`).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { PaxosError } from '../errors.js';
import { KvHttpServer } from '../kv/http-server.js';
import { KvService } from '../kv/kv-service.js';
import { SILENT_LOGGER } from '../runtime/interfaces.js';
import { STDERR_LOGGER } from './stderr-logger.js';
import { stopSignal } from './stop-signal.js';
import { readMaterial, type TlsFileOptions } from '../security/tls-files.js';
import { TokenStore } from '../security/tokens.js';
import { CommandError, listenFailure, parseFlags, UsageError, type FlagSpec, type Flags } from './flags.js';
import { masterPlacementOf } from './masters-flag.js';
import { parseAddress, parsePeers } from './peer-list.js';

const FLAGS: FlagSpec = {
  id: 'number', listen: 'string', http: 'string', advertise: 'string', peers: 'string', followers: 'string',
  'http-peers': 'string',
  data: 'string', groups: 'number', cluster: 'string', sync: 'boolean', 'master-lease': 'number', masters: 'string',
  'timeout-ms': 'number', 'max-batch': 'number', snapshots: 'boolean', 'snapshot-interval': 'number',
  'snapshot-every': 'number', 'segment-mb': 'number', 'log-hold': 'number', 'clean-interval': 'number',
  'inline-write-bytes': 'number',
  'local-address': 'string', config: 'string', verbose: 'boolean', json: 'boolean', help: 'boolean',
  'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string', 'http-tls': 'boolean', tokens: 'string',
  'open-monitoring': 'boolean',
};

export const KV_SERVE_USAGE = `usage: multipaxos kv serve --id N --listen HOST:PORT --http HOST:PORT
                          --peers 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT --data DIR [options]
       multipaxos kv serve --config FILE [flags that override it]

Runs one node of the replicated KV service: Paxos between nodes on --listen, the HTTP API on --http
(PUT/GET/DELETE /v1/kv/{key}, /status, /metrics, /v1/members, /v1/master). Ctrl-C stops it cleanly.
  --id N             this node's id (a positive integer, never reused)
  --listen H:P       the Paxos address (every node lists it in --peers)
  --http H:P         the HTTP API address (port 0: any free port)
  --advertise URL    how other nodes and clients reach the HTTP API (default http://<--http>)
  --peers LIST       the voting members as ID=HOST:PORT (Paxos addresses), comma-separated
  --followers LIST   nodes that only learn, as ID@LEADER=HOST:PORT (LEADER: the member it follows)
  --http-peers LIST  the other nodes' HTTP API addresses as ID=HOST:PORT, comma-separated: the status
                     page (/ui) and /v1/cluster-status ask them (without it, a node knows only the
                     masters' addresses, from their fences)
  --data DIR         the node's log directory (created if missing)
  --groups G         Paxos groups the keys are spread over, each with its own master (default 3)
  --master-lease MS  the master lease (default 3000; at least 1000)
  --masters P        where the groups' masters start out: spread (default; group g on the member at
                     g mod n, by id) or together (all on the member with the lowest id); give every
                     node the same (docs/kv-service.md, "How many groups, and where their masters go")
  --local-address IP the local address this node's connections to other nodes (Paxos and forwarded
                     requests) leave from (default: the system chooses); lets a firewall tell them
                     apart from clients'
  --cluster NAME     nodes refuse peers from another cluster (default multipaxos)
  --sync=false       do not fsync (fast, not durable: for experiments only)
  --timeout-ms T     how long a write may take before it fails with TIMEOUT (default 5000)
  --max-batch N      writes one Paxos instance may carry (default 1000)
  --snapshot-interval MS  snapshot a group whose state changed this long after its last snapshot
                     (default 60000; 0: not by time). A restart replays only the log after it
  --snapshot-every N snapshot a group after N instances (default 10000; 0: not by count)
  --snapshots=false  never snapshot (every restart replays the whole log)
  --segment-mb N     size of each log segment file in MiB (default 8; zero-filled ahead of use, and
                     a spare is prepared while one fills, so a node holds about 2×N MiB of log at start)
  --inline-write-bytes N  durable log writes of up to N bytes are made on the event loop's thread
                     (default 65536; 0: all through the thread pool; see docs/transport-and-storage.md)
  --log-hold N       instances of log kept below the newest snapshot (default: 2 × --snapshot-every,
                     at least 20000); the log below is deleted behind the snapshots
  --clean-interval MS  time between log cleaning passes, one group each (default 1000; 0: never clean)
  --tls-ca FILE      mutual TLS between nodes (see docs/security.md): the cluster CA; with --tls-cert and
  --tls-cert FILE    --tls-key, this node's certificate (naming it as URI multipaxos:node:<id>; made by
  --tls-key FILE     'multipaxos cert issue') and key. Reloaded when they change. The HTTP API serves
                     HTTPS with the same files unless --http-tls=false
  --tokens FILE      require a bearer token on the HTTP API: lines "ROLE TOKEN", ROLE read, write or
                     admin (reloaded when it changes)
  --open-monitoring  with --tokens: leave GET /status and /metrics open (Prometheus scrapers)
  --config FILE      a JSON object with any of these flags as keys, e.g. {"id": 1, "http": "0.0.0.0:8081"}
  --json             print the start-up line as JSON
  --verbose          log the node's events to standard error`;

export const KV_DEFAULT_GROUPS = 3;
export const KV_DEFAULT_LEASE_MS = 3_000;

export async function kvServeCommand(argv: readonly string[]): Promise<number> {
  const flags = await withConfig(parseFlags(argv, FLAGS));
  if (flags.help === true) {
    console.log(KV_SERVE_USAGE);
    return 0;
  }
  const nodeId = required(flags.id, '--id') as number;
  const listen = parseAddress(required(flags.listen, '--listen') as string, '--listen');
  const http = parseAddress(required(flags.http, '--http') as string, '--http');
  const members = parsePeers(required(flags.peers, '--peers') as string, '--peers');
  const followers = flags.followers === undefined ? [] : parseFollowers(flags.followers as string);
  const isFollower = followers.some((follower) => follower.id === nodeId);
  if (!isFollower && !members.some((member) => member.id === nodeId)) members.push({ id: nodeId, ...listen });
  const masterPlacement = masterPlacementOf(flags.masters);

  const tls = tlsFilesOf(flags);
  const tokens = flags.tokens === undefined ? undefined : openTokens(flags.tokens as string);
  if (flags['open-monitoring'] === true && tokens === undefined) throw new UsageError('--open-monitoring needs --tokens');
  if (tls !== undefined && tokens === undefined) {
    // Encryption without authentication: easy to mistake for a secured node.
    process.stderr.write(`warning: node ${nodeId} has TLS but no --tokens: anyone who reaches its HTTP API may read, ` +
      'write and administer it\n');
  }
  const { requested: stopRequested } = stopSignal({ unrefChannel: true });

  const localAddress = flags['local-address'] as string | undefined;
  if (localAddress !== undefined && isIP(localAddress) === 0) {
    throw new UsageError(`--local-address must be an IP address; got "${localAddress}"`);
  }
  const httpPeers = new Map<number, string>();
  // The other nodes serve HTTPS exactly when this one does (cluster up starts them alike).
  const httpScheme = tls !== undefined && flags['http-tls'] !== false ? 'https' : 'http';
  if (flags['http-peers'] !== undefined) {
    for (const peer of parsePeers(flags['http-peers'] as string, '--http-peers')) {
      if (peer.id !== nodeId) httpPeers.set(peer.id, `${httpScheme}://${peer.host.includes(':') ? `[${peer.host}]` : peer.host}:${peer.port}`);
    }
  }
  const server = await KvHttpServer.listen({
    host: http.host, port: http.port, advertisedEndpoint: flags.advertise as string | undefined, httpPeers,
    localAddress, tls: flags['http-tls'] === false ? undefined : tls, tokens, openMonitoring: flags['open-monitoring'] === true,
    logger: STDERR_LOGGER,
  }).catch((error: NodeJS.ErrnoException) => {
    tokens?.close();
    throw listenFailure(`--http ${http.host}:${http.port}`, error) ?? error;
  });
  let service: KvService;
  try {
    service = await KvService.start({
      nodeId, members, followers, listen, localAddress, dataDir: required(flags.data, '--data') as string,
      groups: (flags.groups as number | undefined) ?? KV_DEFAULT_GROUPS,
      masterLeaseMs: (flags['master-lease'] as number | undefined) ?? KV_DEFAULT_LEASE_MS,
      masterPlacement,
      clusterId: flags.cluster as string | undefined, sync: flags.sync as boolean | undefined,
      proposeTimeoutMs: flags['timeout-ms'] as number | undefined,
      maxBatchCount: flags['max-batch'] as number | undefined,
      segmentBytes: segmentBytesOf(flags['segment-mb'] as number | undefined),
      inlineWriteBytes: flags['inline-write-bytes'] as number | undefined,
      logCleaning: {
        holdInstances: flags['log-hold'] as number | undefined,
        intervalMs: flags['clean-interval'] as number | undefined,
      },
      snapshots: flags.snapshots === false ? false : {
        intervalMs: flags['snapshot-interval'] as number | undefined,
        everyInstances: flags['snapshot-every'] as number | undefined,
      },
      httpEndpoint: server.endpoint, logger: flags.verbose === true ? STDERR_LOGGER : SILENT_LOGGER, tls,
    });
  } catch (error) {
    await server.close();
    // A bad setting is the user's to fix: say what it is, without a stack trace.
    if (error instanceof PaxosError && error.code === 'BAD_OPTIONS') throw new UsageError(error.message);
    // So is a disk with no room (or read-only): one line naming the directory and what it needs.
    const storage = storageFailure(error);
    if (storage !== undefined) throw new CommandError(storage);
    throw listenFailure(`--listen ${listen.host}:${listen.port}`, error) ?? error;
  }
  server.attach(service);
  const address = service.node.address();
  const started = {
    nodeId, http: server.endpoint, paxos: `${address?.host}:${address?.port}`, groups: service.groups,
    follower: isFollower, pid: process.pid,
  };
  console.log(flags.json === true ? JSON.stringify({ event: 'started', ...started })
    : `kv node ${nodeId} serving ${server.endpoint} (paxos ${started.paxos}, ${service.groups} groups` +
      `${isFollower ? ', follower' : ''})`);

  await stopRequested;
  await server.close();
  await service.stop();
  if (flags.json !== true) console.log(`kv node ${nodeId} stopped`);
  return 0;
}

/** The node's TLS files, from --tls-ca, --tls-cert and --tls-key (all three or none). */
function tlsFilesOf(flags: Flags): TlsFileOptions | undefined {
  const [ca, cert, key] = ['tls-ca', 'tls-cert', 'tls-key'].map((name) => flags[name] as string | undefined);
  if (ca === undefined && cert === undefined && key === undefined) {
    if (flags['http-tls'] === true) throw new UsageError('--http-tls needs --tls-ca, --tls-cert and --tls-key');
    return undefined;
  }
  if (ca === undefined || cert === undefined || key === undefined) {
    throw new UsageError('TLS needs all of --tls-ca, --tls-cert and --tls-key');
  }
  const files = { ca, cert, key };
  try {
    readMaterial(files);
  } catch (error) {
    throw new CommandError((error as Error).message, 2);
  }
  return files;
}

function openTokens(path: string): TokenStore {
  try {
    return TokenStore.open(path, { logger: STDERR_LOGGER });
  } catch (error) {
    throw new CommandError(`--tokens: ${(error as Error).message}`, 2);
  }
}

/**
 * A start-up that failed for the disk (no room, read-only, failing) as one line: the store says
 * so itself (STORAGE_UNAVAILABLE); another file the node writes at start-up fails with an errno.
 */
function storageFailure(error: unknown): string | undefined {
  if (error instanceof PaxosError && error.code === 'STORAGE_UNAVAILABLE') return error.message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS' || code === 'EIO') {
    return `cannot start: ${(error as Error).message}`;
  }
  return undefined;
}

/** --segment-mb in bytes; whole MiB only, so the flag cannot name a size the store would refuse. */
export function segmentBytesOf(megabytes: number | undefined): number | undefined {
  if (megabytes === undefined) return undefined;
  if (!Number.isInteger(megabytes) || megabytes < 1 || megabytes > 2048) {
    throw new UsageError(`--segment-mb must be a whole number of MiB from 1 to 2048; got ${megabytes}`);
  }
  return megabytes * 1024 * 1024;
}

/** Merge the config file under the flags: a flag given on the command line wins. */
async function withConfig(flags: Flags): Promise<Flags> {
  if (flags.config === undefined) return flags;
  const path = flags.config as string;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`--config ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`--config ${path} must hold a JSON object`);
  }
  const fromFile: string[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === 'config' || FLAGS[name] === undefined) throw new UsageError(`--config ${path}: unknown setting "${name}"`);
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw new UsageError(`--config ${path}: "${name}" must be a string, number or boolean`);
    }
    fromFile.push(`--${name}=${String(value)}`);
  }
  const merged = parseFlags(fromFile, FLAGS);
  for (const [name, value] of Object.entries(flags)) if (value !== undefined) merged[name] = value;
  return merged;
}

/** `4@1=HOST:PORT,5@2=HOST:PORT`: follower 4 follows member 1, and so on. */
function parseFollowers(text: string): { id: number; host: string; port: number; follows: number }[] {
  const follows = new Map<number, number>();
  const plain = text.split(',').filter((entry) => entry.length > 0).map((entry) => {
    const match = /^(\d+)@(\d+)=(.*)$/.exec(entry);
    if (match === null) throw new UsageError(`--followers entries must be ID@LEADER=HOST:PORT; got "${entry}"`);
    follows.set(Number(match[1]), Number(match[2]));
    return `${match[1]}=${match[3]}`;
  }).join(',');
  return parsePeers(plain, '--followers').map((peer) => ({ ...peer, follows: follows.get(peer.id) as number }));
}

function required(value: unknown, flag: string): unknown {
  if (value === undefined) throw new UsageError(`${flag} is required`);
  return value;
}
