// TLS on the client port: pusher-js over wss:// and the pusher SDK over https:// with a
// certificate made here by openssl, and certificate reloads (the files changing, then SIGHUP)
// while the clients stay connected.

import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { testCa } from './lib/certs.mjs';
import { APP, HOST, PusherClient, connected, delay, serverSdk, startServer, subscribed, waitUntil, withTimeout } from './lib/harness.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'chorus-tls-'));
const file = (name) => path.join(dir, name);
const authority = testCa(dir);
authority.issue('first');
authority.issue('second');
const ca = readFileSync(file('ca.pem'));
copyFileSync(file('first.pem'), file('live.pem'));
copyFileSync(file('first.key'), file('live.key'));

// pusher-js's Node transport opens its sockets with tls.connect and takes no CA option: trust the
// test CA there (verification stays on: an unknown CA or a wrong name still fails).
const realConnect = tls.connect;
tls.connect = function connectTrustingTestCa(...args) {
  const i = args.findIndex((a) => a && typeof a === 'object');
  if (i >= 0) args[i] = { ...args[i], ca: args[i].ca ?? ca };
  else args.push({ ca });
  return realConnect.apply(this, args);
};

/** SHA-256 fingerprint of the certificate a new connection is shown. */
function presented(port) {
  return new Promise((resolve, reject) => {
    const s = realConnect({ host: HOST, port, ca }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}
const fingerprint = (pem) => new X509Certificate(readFileSync(pem)).fingerprint256;

let server;
before(async () => {
  server = await startServer({ settings: { tls_cert: file('live.pem'), tls_key: file('live.key') }, ca });
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('pusher-js over wss and the pusher SDK over https, through a certificate reload', async () => {
  const client = new PusherClient(APP.key, {
    cluster: 'mt1', wsHost: HOST, wssPort: server.port, forceTLS: true, enabledTransports: ['ws'], disableStats: true,
  });
  try {
    await connected(client);
    const channel = await subscribed(client, 'news');
    const sdk = serverSdk(server, { useTLS: true, agent: new https.Agent({ ca }) });
    const got = [];
    channel.bind('e', (d) => got.push(d));
    let dropped = false;
    client.connection.bind('state_change', ({ current }) => { if (current !== 'connected') dropped = true; });

    await sdk.trigger('news', 'e', { n: 1 });
    await waitUntil(() => got.length === 1, 'event over wss');
    assert.equal(await presented(server.port), fingerprint(file('first.pem')));

    // A renewal: the files change; new handshakes get the new certificate within the poll.
    copyFileSync(file('second.key'), file('live.key'));
    copyFileSync(file('second.pem'), file('live.pem'));
    const second = fingerprint(file('second.pem'));
    await waitUntil(async () => (await presented(server.port)) === second, 'the new certificate', { timeout: 12000, interval: 250 });

    // SIGHUP reloads at once.
    copyFileSync(file('first.key'), file('live.key'));
    copyFileSync(file('first.pem'), file('live.pem'));
    server.signal('SIGHUP');
    const first = fingerprint(file('first.pem'));
    await waitUntil(async () => (await presented(server.port)) === first, 'the certificate after SIGHUP', { timeout: 12000, interval: 100 });

    // The client that was connected all along is still served, over the same socket.
    await sdk.trigger('news', 'e', { n: 2 });
    await waitUntil(() => got.length === 2, 'event after the reloads');
    assert.equal(dropped, false, 'the connection never dropped');
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }]);
  } finally {
    client.disconnect();
  }
});

test('a broken renewal keeps the running certificate', async () => {
  const before = await presented(server.port);
  const mark = server.mark();
  writeFileSync(file('live.pem'), 'not a certificate\n');
  server.signal('SIGHUP');
  await waitUntil(() => /TLS certificate not reloaded/.test(server.logsSince(mark)), 'the error logged');
  assert.equal(await presented(server.port), before);
  await delay(10);
  copyFileSync(file('first.pem'), file('live.pem'));
  const sdk = serverSdk(server, { useTLS: true, agent: new https.Agent({ ca }) });
  const res = await withTimeout(sdk.get({ path: '/channels' }), 5000, 'API over https');
  assert.equal(res.status, 200);
});
