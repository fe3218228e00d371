// Headless Chromium tests: a page imports the built package (npm/dist/chorus.js + wasm) and talks
// to a real chorus server; the page's own server signs channel and user auth.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { APP, HOST, browser, chorus, proxy, sleep, until, web } from './lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Opens the test page and creates `window.c = new Chorus(...)` as user `user`; events go to `window.log`. */
async function open(br, app, srv, user, opts = {}) {
  const page = await br.page(app.url + '/');
  await page.evaluate(
    ({ key, port, user, opts }) => {
      const headers = { 'X-Test-Token': 'let-me-in', 'X-User-Id': user, 'X-User-Name': 'User ' + user };
      window.log = [];
      window.got = [];
      const c = new window.Chorus({
        key,
        wsHost: '127.0.0.1',
        wsPort: port,
        forceTLS: false,
        auth: { headers },
        userAuthentication: { headers },
        ...opts,
      });
      window.c = c;
      c.connection.on('state_change', (s) => log.push(['state', s.current, Date.now()]));
      c.connection.on('error', (e) => log.push(['error', e]));
      c.connection.on('connecting_in', (ms) => log.push(['connecting_in', ms, Date.now()]));
    },
    { key: APP.key, port: srv.port, user, opts },
  );
  return page;
}

const state = (page) => page.evaluate(() => window.c.connection.state);
const got = (page) => page.evaluate(() => window.got);
const waitGot = (page, n, what, timeout = 5000) => until(async () => (await got(page)).length >= n, what, timeout);

describe('in Chromium', () => {
  let srv;
  let app;
  let br;
  before(async () => {
    srv = await chorus({ app: 'history_size = 1000' });
    app = await web(srv);
    br = await browser();
  });
  after(async () => {
    await br?.close();
    await app?.close();
    await srv?.stop();
  });

  test('public channel: a page receives server events', async () => {
    const page = await open(br, app, srv, '1');
    await page.evaluate(
      () =>
        new Promise((r) =>
          window.c
            .channel('chat.1')
            .listen('.NewMessage', (d) => got.push(['verbatim', d]))
            .listen('NewMessage', (d) => got.push(['namespaced', d]))
            .subscribed(r),
        ),
    );
    assert.equal(await state(page), 'connected');
    assert.match(await page.evaluate(() => window.c.socketId()), /^\d+\.\d+$/);
    await srv.pusher.trigger('chat.1', 'NewMessage', { text: 'hi' });
    await srv.pusher.trigger('chat.1', 'App\\Events\\NewMessage', { text: 'there' });
    await waitGot(page, 2, 'two events');
    assert.deepEqual(await got(page), [
      ['verbatim', { text: 'hi' }],
      ['namespaced', { text: 'there' }],
    ]);
    const states = (await page.evaluate(() => log)).filter((e) => e[0] === 'state').map((e) => e[1]);
    assert.deepEqual(states, ['connecting', 'connected']);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('private and presence channels, whisper between two pages', async () => {
    const a = await open(br, app, srv, '1');
    const b = await open(br, app, srv, '2');
    const join = (page) =>
      page.evaluate(
        () =>
          new Promise((r) => {
            window.c
              .private('chat_privado.7')
              .listen('MensajePrivado', (d) => got.push(['message', d]))
              .listenForWhisper('typing', (d) => got.push(['typing', d]));
            window.c
              .join('room.1')
              .here((m) => {
                got.push(['here', m.map((x) => x.id).sort()]);
                r();
              })
              .joining((m) => got.push(['joining', m]))
              .leaving((m) => got.push(['leaving', m]));
          }),
      );
    await join(a);
    await join(b);
    await until(async () => (await got(a)).some((e) => e[0] === 'joining'), 'a sees b joining');
    await until(() => b.evaluate(() => window.c.private('chat_privado.7').trigger('client-typing', { userId: 2 })), 'whisper sent');
    await until(async () => (await got(a)).some((e) => e[0] === 'typing'), 'a gets the whisper');
    await srv.pusher.trigger('private-chat_privado.7', 'App\\Events\\MensajePrivado', { text: 'hola' });
    await until(async () => (await got(b)).some((e) => e[0] === 'message'), 'b gets the private event');
    await b.evaluate(() => window.c.leave('room.1'));
    await until(async () => (await got(a)).some((e) => e[0] === 'leaving'), 'a sees b leaving');

    const ga = await got(a);
    assert.deepEqual(ga.find((e) => e[0] === 'here'), ['here', ['1']]);
    assert.deepEqual(ga.find((e) => e[0] === 'joining'), ['joining', { id: '2', name: 'User 2' }]);
    assert.deepEqual(ga.find((e) => e[0] === 'typing'), ['typing', { userId: 2 }]);
    assert.deepEqual(ga.find((e) => e[0] === 'leaving'), ['leaving', { id: '2', name: 'User 2' }]);
    const gb = await got(b);
    assert.deepEqual(gb.find((e) => e[0] === 'here'), ['here', ['1', '2']]);
    assert.deepEqual(gb.find((e) => e[0] === 'message'), ['message', { text: 'hola' }]);
    assert.equal(gb.filter((e) => e[0] === 'typing').length, 0, 'own whisper not echoed');
    await a.close();
    await b.close();
  });

  test('an auth endpoint that refuses (403) is surfaced as an error', async () => {
    const page = await open(br, app, srv, '1');
    const err = await page.evaluate(() => new Promise((r) => window.c.private('forbidden.9').error(r)));
    assert.equal(err.type, 'AuthError');
    assert.equal(err.status, 403);
    assert.match(err.error, /403/);
    const conn = await until(() => page.evaluate(() => log.find((e) => e[0] === 'error')), 'connection error');
    assert.equal(conn[1].type, 'AuthError');
    assert.equal(conn[1].data.channel, 'private-forbidden.9');
    await page.close();
  });

  test('private channel cut off for 3 s while 200 events are published: after reconnecting the page has all of them, once, in order', async () => {
    // A TCP proxy between the page and chorus drops the connections and refuses new ones; the
    // resubscription is authorized again and asks to recover.
    const px = await proxy(srv.port);
    const publish = async (from, to, gap = 0) => {
      for (let n = from; n < to; n++) {
        await srv.pusher.trigger('private-feed.page', 'Msg', { n });
        if (gap) await sleep(gap);
      }
    };
    try {
      const page = await open(br, app, srv, '1', { wsPort: px.port });
      await page.evaluate(
        () =>
          new Promise((r) => {
            window.rec = { subs: [], recovered: [], failed: [] };
            window.c
              .private('feed.page')
              .listen('.Msg', (d) => got.push(d.n))
              .subscribed((info) => {
                rec.subs.push(info);
                r();
              })
              .recovered((x) => rec.recovered.push(x))
              .recoveryFailed((x) => rec.failed.push(x));
          }),
      );
      await publish(0, 5);
      await waitGot(page, 5, 'live events before the outage');
      const t0 = Date.now();
      px.cut();
      await until(async () => (await state(page)) !== 'connected', 'outage noticed');
      await publish(5, 205);
      await sleep(Math.max(0, 3000 - (Date.now() - t0)));
      px.restore();
      await publish(205, 215, 50);
      await waitGot(page, 215, 'all 215 events', 15000);
      await sleep(200);
      assert.deepEqual(await got(page), Array.from({ length: 215 }, (_, i) => i));
      const rec = await page.evaluate(() => window.rec);
      assert.deepEqual(rec.subs, [{ recovered: false }, { recovered: true }]);
      assert.equal(rec.recovered.length, 1);
      assert.ok(rec.recovered[0].replayed >= 200, JSON.stringify(rec.recovered));
      assert.deepEqual(rec.failed, []);
      // Chromium logs each refused attempt to the console; nothing else may appear.
      assert.deepEqual(page.errors.filter((e) => !/^WebSocket connection to .* failed: .*net::ERR_/.test(e)), []);
      await page.close();
    } finally {
      await px.close();
    }
  });

  test('server killed and restarted: reconnect, resubscribe, listeners fire again, within ~3 s', async () => {
    const page = await open(br, app, srv, '1');
    await page.evaluate(
      () =>
        new Promise((r) => {
          window.subs = [];
          window.c
            .private('orders.1')
            .listen('.Shipped', (d) => got.push(d))
            .subscribed(() => {
              subs.push(Date.now());
              r();
            });
        }),
    );
    await srv.kill();
    await until(async () => (await state(page)) !== 'connected', 'outage noticed');
    await sleep(1500);
    await srv.start();
    const up = Date.now();
    const back = await until(() => page.evaluate(() => (window.subs.length === 2 ? window.subs[1] : 0)), 'resubscribed', 10000);
    console.log(`# browser recovery: ${back - up} ms after the server was up`);
    assert.ok(back - up <= 3500, `resubscribed ${back - up} ms after restart`);
    assert.equal(await state(page), 'connected');
    await srv.pusher.trigger('private-orders.1', 'Shipped', { id: 5 });
    await waitGot(page, 1, 'listener fires after reconnect');
    assert.deepEqual(await got(page), [{ id: 5 }]);
    await page.close();
  });

  test("the browser's online event retries at once instead of waiting out the backoff", async () => {
    // A first backoff step of 30 s: after the server dies, the next attempt is drawn in [0, 30 s).
    const page = await open(br, app, srv, '1', { reconnectBaseDelay: 30000, maxReconnectDelay: 60000 });
    await until(async () => (await state(page)) === 'connected', 'connected');
    await srv.kill();
    // Wait until the pending attempt is due at least 8 s from now (a shorter draw just fails
    // against the dead server and is replaced by a new one).
    const scheduled = await until(
      () =>
        page.evaluate(() => {
          const e = log.filter((x) => x[0] === 'connecting_in').pop();
          return e && e[2] + e[1] - Date.now() >= 8000 ? e : null;
        }),
      'an attempt scheduled >= 8 s ahead',
      60000,
    );
    const attempts = await page.evaluate(() => log.filter((x) => x[0] === 'connecting_in').length);
    await srv.start();
    const due = scheduled[2] + scheduled[1];
    const onlineAt = Date.now();
    assert.ok(due - onlineAt >= 5000, `the backoff is due in ${due - onlineAt} ms: too soon to tell the online event from it`);
    await br.context.setOffline(true);
    await sleep(50);
    await br.context.setOffline(false);
    await until(async () => (await state(page)) === 'connected', 'connected after online', 3000);
    const at = Date.now();
    console.log(`# online event: connected ${at - onlineAt} ms after it; the backoff was due in ${due - onlineAt} ms`);
    assert.ok(at < due - 2000, `connected ${at - onlineAt} ms after online; backoff was due in ${due - onlineAt} ms`);
    // It was the online event, not a retry timer, that opened the connection.
    assert.equal(await page.evaluate(() => log.filter((x) => x[0] === 'connecting_in').length), attempts);
    await page.close();
  });
});

describe('encrypted channels in Chromium', () => {
  let srv;
  let app;
  let br;
  const masterKey = Buffer.from(Array.from({ length: 32 }, (_, i) => i * 7)).toString('base64');
  before(async () => {
    srv = await chorus();
    const Pusher = (await import('pusher')).default;
    srv.encrypting = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: HOST, port: String(srv.port), useTLS: false, encryptionMasterKeyBase64: masterKey });
    app = await web({ port: srv.port, pusher: srv.encrypting });
    br = await browser();
  });
  after(async () => {
    await br?.close();
    await app?.close();
    await srv?.stop();
  });

  test('the crypto file loads on first use, and the page decrypts what the pusher SDK sends', async () => {
    const page = await open(br, app, srv, '1');
    const requests = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    await until(async () => (await state(page)) === 'connected', 'connected');
    assert.ok(!requests.some((p) => p.endsWith('/crypto.js')), 'no crypto before an encrypted channel');
    await page.evaluate(() => {
      window.c
        .encryptedPrivate('vault.1')
        .listen('.Secret', (d) => window.got.push(d))
        .subscribed(() => (window.sub = true));
    });
    await page.waitForFunction(() => window.sub === true, null, { timeout: 5000 });
    assert.ok(requests.some((p) => p === '/sdk/dist/crypto.js'), `crypto loaded: ${requests.join(', ')}`);
    await srv.encrypting.trigger('private-encrypted-vault.1', 'Secret', { text: 'sólo para ti', n: 1 });
    await srv.encrypting.trigger('private-encrypted-vault.1', 'Secret', { text: 'second', n: 2 });
    await waitGot(page, 2, 'two decrypted events');
    assert.deepEqual(await got(page), [
      { text: 'sólo para ti', n: 1 },
      { text: 'second', n: 2 },
    ]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('a crypto file that does not load: the events are reported unreadable, none is delivered', async () => {
    const page = await open(br, app, srv, '2');
    await page.route('**/crypto.js', (route) => route.abort());
    await until(async () => (await state(page)) === 'connected', 'connected');
    await page.evaluate(() => {
      window.c
        .encryptedPrivate('vault.2')
        .listen('.Secret', (d) => window.got.push(d))
        .subscribed(() => (window.sub = true));
    });
    await page.waitForFunction(() => window.sub === true, null, { timeout: 5000 });
    await srv.encrypting.trigger('private-encrypted-vault.2', 'Secret', { n: 1 });
    await until(
      () => page.evaluate(() => window.log.some((e) => e[0] === 'error' && e[1].type === 'DecryptionError')),
      'a DecryptionError',
    );
    const errors = await page.evaluate(() => window.log.filter((e) => e[0] === 'error').map((e) => e[1]));
    assert.deepEqual(errors, [{ type: 'DecryptionError', data: { channel: 'private-encrypted-vault.2', event: 'Secret' } }]);
    assert.deepEqual(await got(page), []);
    await page.close();
  });
});

describe('a Vite app', () => {
  let srv;
  let br;
  let out;
  let server;
  before(async () => {
    srv = await chorus();
    br = await browser();
    out = await mkdtemp(path.join(os.tmpdir(), 'chorus-sdk-vite-'));
  });
  after(async () => {
    server?.closeAllConnections?.();
    await new Promise((r) => (server ? server.close(r) : r()));
    await br?.close();
    await srv?.stop();
    await rm(out, { recursive: true, force: true });
  });

  test('vite build of an app importing the package runs in Chromium and receives events', async () => {
    const { build } = await import('vite');
    await build({ root: path.join(HERE, 'vite-app'), logLevel: 'error', build: { outDir: out, emptyOutDir: true } });
    const assets = readdirSync(path.join(out, 'assets'));
    assert.ok(assets.some((f) => f.endsWith('.wasm')), `no wasm emitted: ${assets.join(', ')}`);
    // The encrypted channels' crypto stays a separate chunk that this app never loads.
    assert.ok(assets.some((f) => /^crypto-.*\.js$/.test(f)), `no separate crypto chunk: ${assets.join(', ')}`);

    const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
    server = http.createServer((req, res) => {
      const p = new URL(req.url, 'http://x').pathname;
      const file = path.join(out, p === '/' ? 'index.html' : p);
      if (!file.startsWith(out) || !existsSync(file)) {
        res.writeHead(404);
        return res.end();
      }
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
      res.end(readFileSync(file));
    });
    await new Promise((r) => server.listen(0, HOST, r));
    const page = await br.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://${HOST}:${server.address().port}/?port=${srv.port}`);
    await page.waitForFunction(() => window.subscribed === true, null, { timeout: 10000 });
    await srv.pusher.trigger('vite.1', 'Hello', { from: 'server' });
    await page.waitForFunction(() => window.events.length === 1, null, { timeout: 5000 });
    assert.deepEqual(await page.evaluate(() => window.events), [{ from: 'server' }]);
    assert.equal(await page.title(), 'connected');
    assert.deepEqual(errors, []);
    await page.screenshot({ path: path.join(os.tmpdir(), 'chorus-sdk-vite.png') });
    await page.close();
  });
});

describe('heartbeat in Chromium', () => {
  let srv;
  let app;
  let br;
  before(async () => {
    srv = await chorus({ activityTimeout: 3 });
    app = await web(srv);
    br = await browser();
  });
  after(async () => {
    try {
      srv?.thaw();
    } catch {}
    await br?.close();
    await app?.close();
    await srv?.stop();
  });

  test('a frozen server (SIGSTOP) is noticed within activity_timeout + pong timeout, then the client reconnects', async () => {
    const page = await open(br, app, srv, '1', { pongTimeout: 2000, connectTimeout: 4000 });
    await page.evaluate(() => new Promise((r) => window.c.channel('beat.1').listen('.Beat', (d) => got.push(d)).subscribed(r)));
    srv.freeze();
    const frozenAt = Date.now();
    const noticed = await until(
      () => page.evaluate((t) => log.find((e) => e[0] === 'state' && e[1] !== 'connected' && e[2] >= t), frozenAt),
      'frozen server noticed',
      10000,
    );
    const after = noticed[2] - frozenAt;
    console.log(`# frozen server noticed after ${after} ms (activity_timeout 3 s + pong timeout 2 s)`);
    assert.ok(after <= 3000 + 2000 + 1000, `noticed after ${after} ms`);
    srv.thaw();
    await until(async () => (await state(page)) === 'connected', 'reconnected after SIGCONT', 15000);
    await until(() => page.evaluate(() => window.c._client.subscribed('beat.1')), 'resubscribed', 5000);
    await srv.pusher.trigger('beat.1', 'Beat', { n: 1 });
    await waitGot(page, 1, 'listener fires after the reconnect');
    await page.close();
  });
});
