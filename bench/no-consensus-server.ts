/**
 * The no-consensus reference of `npm run bench -- kv`: a Node HTTP/1.1 server that answers
 * `PUT /v1/kv/{key}` as our KV service does (the same JSON body, parsed and checked the same way:
 * a string value, an optional version; the answer `{"key", "version"}` with the same headers) from
 * an in-memory map, with no replication and no disk. It is what the HTTP and JSON alone cost on
 * this machine, and so the ceiling for any server written this way.
 *
 * Run as its own process (`node no-consensus-server.js`): it listens on a free loopback port, prints
 * `{"endpoint": "http://127.0.0.1:PORT"}` on stdout, and exits when its stdin closes (so it never
 * outlives the bench).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const KEY_PREFIX = '/v1/kv/';
const versions = new Map<string, { value: string; version: number }>();

function answer(response: ServerResponse, status: number, body: unknown): void {
  const payload = Buffer.from(`${JSON.stringify(body)}\n`, 'utf8');
  response.writeHead(status, { 'x-multipaxos-node': '1', 'x-multipaxos-group': '0',
    'content-type': 'application/json', 'content-length': payload.length });
  response.end(payload);
}

function handle(request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? '/').split('?', 1)[0] as string;
  if (request.method !== 'PUT' || !path.startsWith(KEY_PREFIX)) {
    answer(response, 404, { error: 'NOT_FOUND', message: 'only PUT /v1/kv/{key}', mayHaveBeenApplied: false });
    return;
  }
  const key = decodeURIComponent(path.slice(KEY_PREFIX.length));
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    let body: { value?: unknown; version?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      answer(response, 400, { error: 'BAD_REQUEST', message: 'the body is not JSON', mayHaveBeenApplied: false });
      return;
    }
    if (typeof body !== 'object' || body === null || typeof body.value !== 'string' ||
      (body.version !== undefined && !Number.isSafeInteger(body.version))) {
      answer(response, 400, { error: 'BAD_REQUEST', message: 'expected {"value", "version"?}', mayHaveBeenApplied: false });
      return;
    }
    const current = versions.get(key)?.version ?? 0;
    if (body.version !== undefined && body.version !== current) {
      answer(response, 409, { error: 'VERSION_CONFLICT', version: current, mayHaveBeenApplied: false });
      return;
    }
    versions.set(key, { value: body.value, version: current + 1 });
    answer(response, 200, { key, version: current + 1 });
  });
}

const server = createServer(handle);
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${port}` })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
