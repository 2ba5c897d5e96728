/**
 * Loopback ports for tests and benchmarks that start a listener later (a node process, a peer that
 * is not up yet). A port is found free, then released, then listened on by someone else: in that
 * gap any outgoing connection on the machine may be given the same number as its local port, if
 * the number is in the kernel's ephemeral range, which is where `listen(0)` picks from. A test run
 * opens thousands of such connections, and one did take a node's port in CI ("the port is in use").
 * So ports are drawn at random below the ephemeral range, where the kernel never assigns local
 * ports by itself, checked free by listening on them, and never handed out twice by one process.
 * Two test processes (the runner runs two files at once) may still draw the same port between the
 * check and the listen, as with listen(0) before, but only each other's, not any connection's.
 * When the range has no free port left, the kernel's choice is the answer (in its ephemeral range).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port tried (below it are well-known and registered services' ports). */
const LOWEST_PORT = 10_000;
/** Linux's default ephemeral range starts here; read from /proc when it can be. */
const DEFAULT_EPHEMERAL_START = 32_768;
const ATTEMPTS = 200;

const handedOut = new Set<number>();
let ephemeralRangeStart: number | undefined;

/** A loopback port free at the moment of asking, outside the kernel's ephemeral range. */
export async function freePort(): Promise<number> {
  return await freePortIn(LOWEST_PORT, ephemeralStart());
}

/**
 * A free port in [low, high), not handed out before by this process; the kernel's choice when the
 * range has none (after a bounded number of draws).
 */
export async function freePortIn(low: number, high: number): Promise<number> {
  const size = high - low;
  for (let attempt = 0; attempt < ATTEMPTS && size > 0; attempt++) {
    const port = low + Math.floor(Math.random() * size);
    if (handedOut.has(port)) continue;
    if (await listensOn(port)) {
      handedOut.add(port);
      return port;
    }
  }
  const port = await listenedPort(0);
  handedOut.add(port);
  return port;
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let index = 0; index < count; index++) ports.push(await freePort());
  return ports;
}

function ephemeralStart(): number {
  if (ephemeralRangeStart !== undefined) return ephemeralRangeStart;
  ephemeralRangeStart = DEFAULT_EPHEMERAL_START;
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isSafeInteger(low) && low > 0) ephemeralRangeStart = low;
  } catch {
    // Not Linux, or no /proc: the default.
  }
  return ephemeralRangeStart;
}

async function listensOn(port: number): Promise<boolean> {
  try {
    return await listenedPort(port) === port;
  } catch {
    return false;
  }
}

function listenedPort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}
