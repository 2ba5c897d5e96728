// A CA bundle written in place is read only once it has stayed the same for a whole poll interval:
// a poll that lands while the file is half written (here: the first of its two CAs) does not load
// that partial bundle, which would close connections the second CA still trusts. Real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TlsFiles } from '../../src/security/tls-files.js';
import { makeTestPki } from '../support/certs.js';

test('a CA file changing between polls is loaded only once it stays the same for one interval', async () => {
  const pki = await makeTestPki('tls-reload-settle');
  const node = await pki.node(1);
  const [one, other] = [await readFile(pki.ca.cert, 'utf8'), await readFile(pki.otherCa.cert, 'utf8')];
  const ca = join(pki.dir, 'bundle.crt');
  await writeFile(ca, `${one}${other}`);
  const files = TlsFiles.open({ ...node, ca, reloadIntervalMs: 0 });
  try {
    assert.equal(files.current.caCertificates.length, 2);
    // The operator rewrites the bundle in place (the same two CAs, the other first); a poll sees it
    // when only the first CA is written.
    await writeFile(ca, other);
    assert.equal(files.poll(), false, 'a file seen changed for the first time is not loaded yet');
    assert.equal(files.current.caCertificates.length, 2);
    await writeFile(ca, `${other}${one}`);
    assert.equal(files.poll(), false, 'it changed again since: still settling');
    assert.equal(files.poll(), true, 'unchanged for an interval: loaded');
    assert.equal(files.current.caCertificates.length, 2);
    assert.equal(files.poll(), false, 'nothing new');
  } finally {
    files.close();
  }
});
