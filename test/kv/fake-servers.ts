// Scripted HTTP servers for KvClient tests: each records the requests it gets and answers them as
// its script says, so a test can pin down exactly what the client sent where, and how many times.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KvError } from '../../src/kv/kv-error.js';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface FakeServer {
  readonly endpoint: string;
  readonly seen: Seen[];
  /** The KV requests seen (probes of /status left out). */
  kvRequests(): Seen[];
  close(): Promise<void>;
}

/** Answers one request; `index` counts every request this server got. */
export type Script = (request: Seen, response: ServerResponse, index: number) => void;

/** Open fake servers, closed by closeFakeServers (a test file's afterEach). */
const fakes: FakeServer[] = [];

export async function closeFakeServers(): Promise<void> {
  await Promise.all(fakes.splice(0).map((fake) => fake.close()));
}

/** An HTTP server that records each request (once its body is in) and lets `script` answer it. */
export async function fakeServer(script: Script): Promise<FakeServer> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => {
      const entry: Seen = {
        method: request.method ?? '', url: request.url ?? '', headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(entry);
      script(entry, response, seen.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fake: FakeServer = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    kvRequests: () => seen.filter((entry) => entry.url.startsWith('/v1/kv/')),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
  fakes.push(fake);
  return fake;
}

export function answer(
  response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(text);
}

export function failure(code: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { error: code, message: `scripted ${code}`, mayHaveBeenApplied: false, ...extra };
}

/** A server that must never be asked (the test checks that it was not). */
export async function untouched(): Promise<FakeServer> {
  return await fakeServer((_, response) => answer(response, 500, failure('INTERNAL')));
}

export function kvError(code: string, check: (error: KvError) => boolean = () => true): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof KvError, `expected a KvError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return check(error);
  };
}
