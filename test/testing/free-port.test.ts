import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { freePortIn, freePorts } from '../../src/testing/free-port.js';

function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32_768;
  }
}

function listen(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

async function closeAll(servers: readonly (Server | null)[]): Promise<void> {
  await Promise.all(servers.map((server) => server === null ? undefined
    : new Promise((resolve) => server.close(resolve))));
}

describe('freePort', () => {
  it('hands out distinct ports below the ephemeral range, each one free to listen on', async () => {
    const ports = await freePorts(40);
    assert.equal(new Set(ports).size, ports.length, `a port was handed out twice: ${ports.join(',')}`);
    const limit = ephemeralStart();
    for (const port of ports) {
      assert.ok(port >= 10_000 && port < limit, `port ${port} is not in [10000, ${limit})`);
    }
    const servers = await Promise.all(ports.map(listen));
    try {
      assert.ok(servers.every((server) => server !== null), 'a port handed out could not be listened on');
    } finally {
      await closeAll(servers);
    }
  });

  it('skips ports something listens on, and falls back to the kernel when the range has none left', async () => {
    // A small range, most of it occupied by listeners this module knows nothing of.
    const low = 10_000 + Math.floor(Math.random() * 20_000);
    const range = Array.from({ length: 8 }, (_, index) => low + index);
    const occupied = await Promise.all(range.slice(0, 6).map(listen));
    try {
      const busy = new Set(range.slice(0, 6).filter((_, index) => occupied[index] !== null));
      const got = [await freePortIn(low, low + 8), await freePortIn(low, low + 8)];
      for (const port of got) {
        assert.ok(!busy.has(port), `port ${port} is being listened on`);
      }
      assert.notEqual(got[0], got[1]);
      // Every port of the range is now occupied or handed out: the kernel picks one, still free.
      const fallback = await freePortIn(low, low + 8);
      assert.ok(!range.includes(fallback), `fallback ${fallback} is inside the exhausted range`);
      const server = await listen(fallback);
      assert.ok(server !== null, 'the fallback port could not be listened on');
      await closeAll([server]);
    } finally {
      await closeAll(occupied);
    }
  });
});
