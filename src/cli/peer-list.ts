/** Parses the node addresses of the command line: `HOST:PORT` and `1=HOST:PORT,2=HOST:PORT`. */
import { UsageError } from './flags.js';

export interface ParsedAddress {
  readonly host: string;
  readonly port: number;
}

export function parseAddress(text: string, flag: string): ParsedAddress {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || host.length === 0 || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(`${flag} must be HOST:PORT; got "${text}"`);
  }
  return { host, port };
}

export function parsePeers(text: string, flag: string): { id: number; host: string; port: number }[] {
  const peers = text.split(',').filter((entry) => entry.length > 0).map((entry) => {
    const equals = entry.indexOf('=');
    const id = Number(entry.slice(0, equals));
    if (equals <= 0 || !Number.isSafeInteger(id) || id < 1) {
      throw new UsageError(`${flag} entries must be ID=HOST:PORT with a positive integer id; got "${entry}"`);
    }
    return { id, ...parseAddress(entry.slice(equals + 1), flag) };
  });
  if (peers.length === 0) throw new UsageError(`${flag} lists no nodes`);
  return peers;
}
