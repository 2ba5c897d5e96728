// An HTTP proxy in front of one KV node for tests of exactly-once writes: it hides which node
// answered (so a client keeps coming through it rather than learning the node's own endpoint) and,
// for each PUT, may hold the request back a while, or lose the node's answer after the node gave it
// (as when a master dies between choosing a write and answering it), first running `onLost` with
// what the node answered.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WritePlan {
  /** Lose the answer after the node gave it: the client sees its connection cut. */
  readonly loseAnswer?: boolean;
  /** Wait this long before passing the request on. */
  readonly holdMs?: number;
  /** Runs with the lost answer before the client's connection is cut (to kill the node, say). */
  readonly onLost?: (status: number, body: string) => Promise<void> | void;
}

export interface AnswerLosingProxy {
  readonly endpoint: string;
  /** Each PUT's session headers, in arrival order. */
  readonly writes: { readonly session: string | undefined; readonly sequence: string | undefined }[];
  /** The answers lost, in order. */
  readonly lost: { readonly status: number; readonly body: string }[];
  close(): Promise<void>;
}

/** `target`: the node's endpoint, or a function that says where each request goes (it may change). */
export async function answerLosingProxy(
  target: string | (() => string), planFor: (writeIndex: number) => WritePlan,
): Promise<AnswerLosingProxy> {
  const targetNow = typeof target === 'string' ? () => target : target;
  const writes: AnswerLosingProxy['writes'] = [];
  const lost: AnswerLosingProxy['lost'] = [];
  const server: Server = createServer((incoming: IncomingMessage, outgoing: ServerResponse) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.once('end', () => {
      let plan: WritePlan = {};
      if (incoming.method === 'PUT') {
        plan = planFor(writes.length);
        writes.push({
          session: incoming.headers['x-multipaxos-session'] as string | undefined,
          sequence: incoming.headers['x-multipaxos-sequence'] as string | undefined,
        });
      }
      const forward = (): void => {
        const headers = { ...incoming.headers };
        delete headers.host;
        const upstream = request(new URL(incoming.url ?? '/', targetNow()), { method: incoming.method, headers }, (reply) => {
          const body: Buffer[] = [];
          reply.on('data', (chunk: Buffer) => body.push(chunk));
          reply.once('end', () => {
            if (plan.loseAnswer === true) {
              const text = Buffer.concat(body).toString('utf8');
              lost.push({ status: reply.statusCode ?? 0, body: text });
              Promise.resolve(plan.onLost?.(reply.statusCode ?? 0, text)).finally(() => outgoing.destroy());
              return;
            }
            const replyHeaders = { ...reply.headers };
            delete replyHeaders['x-multipaxos-endpoint'];
            outgoing.writeHead(reply.statusCode ?? 502, replyHeaders);
            outgoing.end(Buffer.concat(body));
          });
        });
        upstream.once('error', () => outgoing.destroy());
        upstream.end(Buffer.concat(chunks));
      };
      if (plan.holdMs === undefined) forward();
      else setTimeout(forward, plan.holdMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    writes,
    lost,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
