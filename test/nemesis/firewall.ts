// Cuts between nodes, inside the nemesis namespace: an nftables table of our own whose output chain
// drops packets from one node's address to another's. Each node binds its outgoing connections to
// its own address (kv serve --local-address), and clients connect from 127.0.0.1, so a cut stops
// node-to-node traffic in one direction and never a client's. Every change replaces the whole rule
// set at once (`nft -f`), so no packet ever sees half of a partition.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const TABLE = 'multipaxos_nemesis';

/** One direction of one link: packets from `from` to `to` are dropped. */
export interface Cut {
  readonly from: number;
  readonly to: number;
}

export class Firewall {
  private readonly addressOf: (nodeId: number) => string;
  private cuts: Cut[] = [];

  constructor(addressOf: (nodeId: number) => string) {
    this.addressOf = addressOf;
  }

  /** The table, empty. */
  async install(): Promise<void> {
    await this.apply([]);
  }

  current(): readonly Cut[] {
    return this.cuts;
  }

  /** Drop exactly these directions from now on (and nothing else). */
  async apply(cuts: readonly Cut[]): Promise<void> {
    const rules = cuts.map(({ from, to }) =>
      `    ip saddr ${this.addressOf(from)} ip daddr ${this.addressOf(to)} drop`).join('\n');
    // Declaring the table first makes the delete valid when it does not exist yet.
    const script = `table ip ${TABLE} {}\ndelete table ip ${TABLE}\ntable ip ${TABLE} {\n` +
      `  chain output {\n    type filter hook output priority 0; policy accept;\n${rules}\n  }\n}\n`;
    await nft(['-f', '-'], script);
    this.cuts = [...cuts];
  }

  async heal(): Promise<void> {
    await this.apply([]);
  }

  async remove(): Promise<void> {
    await nft(['delete', 'table', 'ip', TABLE]).catch(() => {});
    this.cuts = [];
  }
}

async function nft(args: string[], input?: string): Promise<void> {
  const child = run('nft', args, { timeout: 10_000 });
  if (input !== undefined) child.child.stdin?.end(input);
  await child;
}

/** Both directions of every link between a node of `a` and a node of `b`. */
export function between(a: readonly number[], b: readonly number[]): Cut[] {
  return a.flatMap((x) => b.flatMap((y) => [{ from: x, to: y }, { from: y, to: x }]));
}

/** Every node cut from every node but those it is linked to (both ways): `linked(x, y)` says which pairs stay. */
export function keepOnly(nodes: readonly number[], linked: (x: number, y: number) => boolean): Cut[] {
  return nodes.flatMap((x) => nodes.filter((y) => y !== x && !linked(x, y)).map((y) => ({ from: x, to: y })));
}
