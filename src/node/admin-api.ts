/**
 * The administration endpoint of `multipaxos node --admin HOST:PORT`: membership and master
 * election of a running node, over HTTP/1.1 with JSON bodies, for `multipaxos members` and
 * `multipaxos master` (and curl). Bad input gets a 4xx with a message, never a crash.
 *
 *   GET    /v1/members?group=G                      the membership this node has executed
 *   POST   /v1/members?group=G     {id, host, port}  add a member
 *   DELETE /v1/members/ID?group=G                    remove a member
 *   POST   /v1/members/change?group=G {from, id, host, port}  replace a member
 *   GET    /v1/master?group=G                       the master this node sees, and whether it is it
 *   POST   /v1/master/drop?group=G                  step down (this node)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { PaxosError } from '../errors.js';
import type { PaxosNode } from './paxos-node.js';

const MAX_BODY_BYTES = 64 * 1024;

export async function startAdminServer(node: PaxosNode, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    answerAdminRequest(node, request).then(({ status, body, headers }) => reply(response, status, body, headers));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export interface Routed {
  readonly status: number;
  readonly body: unknown;
  /** A 405's `Allow`. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Whether a path belongs to the admin API (the KV server serves it too, on the same port). */
export function isAdminPath(path: string): boolean {
  return path === '/v1/members' || path.startsWith('/v1/members/') || path === '/v1/master' ||
    path.startsWith('/v1/master/');
}

/** The answer to one admin request; failures become a status and an error body, never a throw. */
export async function answerAdminRequest(node: PaxosNode, request: IncomingMessage): Promise<Routed> {
  try {
    return await route(node, request);
  } catch (error) {
    const headers = error instanceof HttpError && error.allow !== undefined ? { allow: error.allow } : undefined;
    return { status: statusOf(error), body: errorBody(error), ...(headers === undefined ? {} : { headers }) };
  }
}

async function route(node: PaxosNode, request: IncomingMessage): Promise<Routed> {
  const url = new URL(request.url ?? '/', 'http://admin');
  const group = groupOf(url);
  const method = request.method ?? 'GET';
  const path = url.pathname;
  if (path === '/v1/members' && method === 'GET') return { status: 200, body: node.members(group) };
  if (path === '/v1/members' && method === 'POST') {
    const body = await readJson(request);
    return { status: 200, body: await node.addMember(group, memberOf(body)) };
  }
  if (path === '/v1/members/change' && method === 'POST') {
    const body = await readJson(request);
    return { status: 200, body: await node.changeMember(group, integerField(body, 'from'), memberOf(body)) };
  }
  const removal = /^\/v1\/members\/(\d+)$/.exec(path);
  if (removal !== null && method === 'DELETE') {
    return { status: 200, body: await node.removeMember(group, Number(removal[1])) };
  }
  if (path === '/v1/master' && method === 'GET') {
    const body = { master: node.master(group) ?? null, isMaster: node.isMaster(group), nodeId: node.nodeId };
    return { status: 200, body };
  }
  if (path === '/v1/master/drop' && method === 'POST') {
    node.dropMaster(group);
    return { status: 200, body: { dropped: true, nodeId: node.nodeId } };
  }
  const allow = removal !== null ? 'DELETE' : ALLOWED_METHODS.get(path);
  if (allow === undefined) throw new HttpError(404, `no such path: ${path}`);
  throw new HttpError(405, `${method} is not allowed on ${path} (allowed: ${allow})`, allow);
}

/** The methods each path takes, for a 405's `Allow` header (/v1/members/ID takes DELETE). */
const ALLOWED_METHODS: ReadonlyMap<string, string> = new Map([
  ['/v1/members', 'GET, POST'],
  ['/v1/members/change', 'POST'],
  ['/v1/master', 'GET'],
  ['/v1/master/drop', 'POST'],
]);

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly allow?: string) {
    super(message);
  }
}

function groupOf(url: URL): number {
  const raw = url.searchParams.get('group') ?? '0';
  const group = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(group)) throw new HttpError(400, `group must be an integer, got ${raw}`);
  return group;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, 'the body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function memberOf(body: Record<string, unknown>): { id: number; host: string; port: number } {
  const host = body.host;
  if (typeof host !== 'string' || host.length === 0) throw new HttpError(400, 'host must be a non-empty string');
  return { id: integerField(body, 'id'), host, port: integerField(body, 'port') };
}

function integerField(body: Record<string, unknown>, field: string): number {
  const value = body[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new HttpError(400, `${field} must be a positive integer`);
  }
  return value;
}

function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (!(error instanceof PaxosError)) return 500;
  switch (error.code) {
    case 'BAD_OPTIONS': case 'INVALID_GROUP': return 400;
    // Refused by the group's current state: the request was well formed, and may succeed later.
    case 'MEMBERSHIP_CONFLICT': case 'CONFLICT': case 'ALREADY_MEMBER': case 'LAST_MEMBER': return 409;
    case 'NO_SUCH_MEMBER': return 404;
    // This node's role does not allow it; another node may.
    case 'FOLLOWER_CANNOT_PROPOSE': case 'NOT_MEMBER': case 'NOT_ELECTING': return 403;
    case 'OVERLOADED': case 'STOPPED': case 'GROUP_HALTED': return 503;
    case 'TIMEOUT': return 504;
    default: return 500;
  }
}

function errorBody(error: unknown): unknown {
  if (error instanceof PaxosError) return { error: error.code, message: error.message, mayBeChosen: error.mayBeChosen };
  if (error instanceof HttpError) return { error: 'BAD_REQUEST', message: error.message };
  return { error: 'INTERNAL', message: String(error) };
}

function reply(
  response: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>,
): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
