/**
 * A TCP relay on loopback (or another local address) in front of a node's transport port, for
 * tests that must see or cut the bytes between two nodes: it can keep every byte it carries, and
 * refuse and close the connections that come from one source address.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpRelay {
  readonly port: number;
  /** Every byte carried so far, both ways (empty unless started with `record`). */
  seen(): Buffer;
  /** Close the connections from `sourceAddress` and refuse new ones until `heal`. */
  cut(sourceAddress: string): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(
  targetPort: number, options: { readonly host?: string; readonly record?: boolean } = {},
): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const chunks: Buffer[] = [];
  let refused: string | undefined;
  const server: Server = createServer((inbound) => {
    if (refused !== undefined && inbound.remoteAddress === refused) {
      inbound.destroy();
      return;
    }
    const outbound = connect(targetPort, '127.0.0.1');
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
      if (options.record === true) socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => {
        sockets.delete(socket);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    seen: () => Buffer.concat(chunks),
    cut(sourceAddress) {
      refused = sourceAddress;
      for (const socket of sockets) {
        if (socket.remoteAddress === sourceAddress) socket.destroy();
      }
    },
    heal() {
      refused = undefined;
    },
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
