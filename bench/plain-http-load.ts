/**
 * The plain-HTTP/1.1 load generator of `npm run bench -- kv`: what a user's service behind a load
 * balancer sends, with no client library. Each put is one request on a keep-alive connection, to
 * the endpoints in turn (round-robin over all of them, whichever node is master or leader); the
 * reply is read whole and must be 2xx. The same generator drives ours (`PUT /v1/kv/{key}`), etcd
 * (`POST /v3/kv/put` through its JSON gateway) and the no-consensus server, so only the server side
 * differs between those rows.
 */
import { Agent, request } from 'node:http';

/** One put as the target's HTTP API spells it. */
export interface PlainHttpRequest {
  readonly method: 'PUT' | 'POST';
  readonly path: string;
  readonly body: string;
}

export interface PlainHttpLoad {
  put(key: string, value: string): Promise<void>;
  /** Closes every connection. */
  close(): void;
}

/** A put as our KV API and the no-consensus server take it: PUT /v1/kv/KEY with {"value": ...}. */
export function kvPutRequest(key: string, value: string): PlainHttpRequest {
  return { method: 'PUT', path: `/v1/kv/${encodeURIComponent(key)}`, body: JSON.stringify({ value }) };
}

/**
 * `clients`: the most puts in flight at once; each endpoint's agent may keep that many connections,
 * so no put ever waits for a socket. `encode` turns a put into the target's request.
 */
export function plainHttpLoad(options: {
  readonly endpoints: readonly string[];
  readonly clients: number;
  readonly encode: (key: string, value: string) => PlainHttpRequest;
  readonly timeoutMs?: number;
}): PlainHttpLoad {
  if (options.endpoints.length === 0) throw new RangeError('plainHttpLoad needs at least one endpoint');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const targets = options.endpoints.map((endpoint) => {
    const url = new URL(endpoint);
    return {
      hostname: url.hostname, port: Number(url.port),
      agent: new Agent({ keepAlive: true, maxSockets: options.clients, maxFreeSockets: options.clients }),
    };
  });
  let next = 0;
  return {
    put(key, value) {
      const target = targets[next] as (typeof targets)[number];
      next = (next + 1) % targets.length;
      const { method, path, body } = options.encode(key, value);
      return new Promise<void>((resolve, reject) => {
        const outgoing = request({
          hostname: target.hostname, port: target.port, agent: target.agent, method, path, timeout: timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        }, (reply) => {
          const status = reply.statusCode ?? 0;
          let text = '';
          reply.setEncoding('utf8');
          reply.on('data', (chunk: string) => {
            if (text.length < 500) text += chunk;
          });
          reply.on('end', () => {
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`${method} ${path}: HTTP ${status}: ${text.trim().slice(0, 500)}`));
          });
          reply.on('error', reject);
        });
        outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
        outgoing.on('error', reject);
        outgoing.end(body);
      });
    },
    close() {
      for (const target of targets) target.agent.destroy();
    },
  };
}
