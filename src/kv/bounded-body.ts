/**
 * A reply's body, read up to a limit: the status pages ask peers for reports that are only shown,
 * so a peer that sends more than `maxBytes` has its request destroyed (`outgoing`) rather than
 * being held in memory.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';

export function readBoundedBody(
  incoming: IncomingMessage, outgoing: ClientRequest, maxBytes: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    incoming.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) outgoing.destroy(new Error(`the answer exceeds ${maxBytes} bytes`));
      else chunks.push(chunk);
    });
    incoming.once('error', reject);
    incoming.once('end', () => resolve({ status: incoming.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
  });
}
