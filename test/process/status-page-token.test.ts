// The status page on a node that requires tokens, in Debian's headless Chromium: the page loads
// without one, asks for a token when /v1/cluster-status answers 401, and with a read token typed in
// shows the cluster (the token kept in the tab's sessionStorage). A wrong token is asked again.
// Without /usr/bin/chromium the test is skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { KvService } from '../../src/kv/kv-service.js';
import { generateToken, TokenStore } from '../../src/security/tokens.js';
import { freePort, tempRoot } from '../support/local.js';

const CHROMIUM = '/usr/bin/chromium';

test('the page asks for a token, and shows the cluster with a read token', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no browser: ${CHROMIUM} is missing`);
    return;
  }
  const root = await tempRoot('status-page-token');
  const token = generateToken();
  await writeFile(join(root, 'tokens'), `read ${token}\n`, { mode: 0o600 });
  const server = await KvHttpServer.listen({
    host: '127.0.0.1', port: 0, tokens: TokenStore.open(join(root, 'tokens'), { reloadIntervalMs: 0 }),
  });
  const service = await KvService.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: await freePort() }], dataDir: join(root, 'n1'), groups: 1,
    masterLeaseMs: 1_000, httpEndpoint: server.endpoint,
  });
  server.attach(service);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${server.endpoint}/ui`);
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10_000 });
    await page.fill('#token', 'not-the-token-0123456789');
    await page.click('#token-form button');
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 10_000 });
    await page.fill('#token', token);
    await page.click('#token-form button');
    await page.waitForSelector('#nodes tbody tr[data-health="up"]', { timeout: 15_000 });
    assert.equal(await page.isHidden('#token-form'), true);
    const kept = await page.evaluate(() => (globalThis as unknown as {
      sessionStorage: { getItem(key: string): string | null };
    }).sessionStorage.getItem('multipaxos-token'));
    assert.equal(kept, token);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.close();
    await service.stop();
  }
});
