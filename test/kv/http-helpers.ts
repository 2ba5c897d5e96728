// Plain HTTP for the KV API tests: one request per connection (nothing lingers after a test), the
// path sent exactly as given (no URL normalization), a deadline on every call, and small helpers
// to read JSON bodies and Prometheus samples.
import { request, type IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface HttpCallOptions {
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string | number>>;
  readonly timeoutMs?: number;
}

/** One HTTP request to `endpoint` with `path` sent verbatim; rejects on a network error or after timeoutMs. */
export function httpCall(endpoint: string, method: string, path: string, options: HttpCallOptions = {}):
Promise<HttpAnswer> {
  const { hostname, port } = new URL(endpoint);
  const payload = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: Record<string, string | number> = { ...options.headers };
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] ??= payload.length;
  }
  return new Promise<HttpAnswer>((resolve, reject) => {
    const outgoing = request({ hostname, port, path, method, headers, agent: false }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.once('error', reject);
      incoming.once('end', () => resolve({
        status: incoming.statusCode ?? 0, headers: incoming.headers, text: Buffer.concat(chunks).toString('utf8'),
      }));
    });
    outgoing.setTimeout(options.timeoutMs ?? 15_000, () => outgoing.destroy(new Error(`${method} ${path}: no answer`)));
    outgoing.once('error', reject);
    outgoing.end(payload);
  });
}

/** The JSON object of an answer (fails the test when it is anything else). */
export function jsonOf(answer: HttpAnswer): Record<string, unknown> {
  const parsed: unknown = JSON.parse(answer.text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`not a JSON object: ${answer.text}`);
  }
  return parsed as Record<string, unknown>;
}

export function kvPath(key: string, query = ''): string {
  return `/v1/kv/${encodeURIComponent(key)}${query}`;
}

/** The value of the sample `name{labels}` in Prometheus text (labels in any order), or undefined. */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}):
number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found.set(pair[1] as string, pair[2] as string);
    }
    const wanted = Object.entries(labels);
    if (found.size === wanted.length && wanted.every(([label, value]) => found.get(label) === value)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

/** Poll `check` every 20 ms until it holds; fail after timeoutMs. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000):
Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
