// The framework integrations in headless Chromium, each as a small app built with Vite
// (frameworks/): the same Vue component on @laravel/echo-vue (laravel-echo's Echo with
// `broadcaster: ChorusConnector`) and on chorus-sdk/vue (the import aliased), and a React app on
// chorus-sdk/react. Against two chorus nodes sharing a Redis (adapter and history): private,
// presence and notification events arrive; a node restart shows in useConnectionStatus and what
// was published meanwhile through the other node arrives once, in order; unmounting the component
// leaves its channels.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { WebSocket } from 'ws';

import { Chorus } from 'chorus-sdk';
import { APP, HOST, browser, chorus, redis, sleep, until, web } from './lib/harness.mjs';

globalThis.WebSocket ??= WebSocket; // Node 20: for the second presence member, run here

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.join(HERE, 'frameworks');

const APPS = [
  { name: 'vue-echo', what: 'Vue on @laravel/echo-vue + ChorusConnector', dir: 'vue', user: '11', members: false },
  { name: 'vue-chorus', what: 'the same Vue component on chorus-sdk/vue', dir: 'vue', user: '12', members: true },
  { name: 'react-chorus', what: 'React on chorus-sdk/react', dir: 'react', user: '13', members: true },
];

const NOTIFICATION = 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
const ORDER = 'App\\Events\\OrderShipped';
const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);
const dedupe = (list) => list.filter((s, i) => s !== list[i - 1]);
// Chromium reports the refused reconnects while a node is down.
const realErrors = (errors) => errors.filter((e) => !/^WebSocket connection to .* failed: .*net::ERR_/.test(e));

async function occupied(srv) {
  const res = await srv.pusher.get({ path: '/channels' });
  return Object.keys((await res.json()).channels);
}

/** `vite build` of one app into `out/{name}` (served under `/{name}/`). */
async function buildApp(app, out) {
  const { build } = await import('vite');
  const plugin = app.dir === 'vue' ? (await import('@vitejs/plugin-vue')).default : (await import('@vitejs/plugin-react')).default;
  const alias = app.name === 'vue-chorus' ? [{ find: /^@laravel\/echo-vue$/, replacement: 'chorus-sdk/vue' }] : [];
  await build({
    root: path.join(SRC, app.dir),
    base: `/${app.name}/`,
    configFile: false,
    logLevel: 'error',
    plugins: [plugin()],
    // chorus-sdk is a symlink here (file:../../npm): resolve its imports (react, vue, chorus-sdk)
    // from node_modules/chorus-sdk as for an installed copy, not from npm/ where they are absent.
    resolve: { alias, preserveSymlinks: true },
    build: { outDir: path.join(out, app.name), emptyOutDir: true },
  });
}

/** Serves the built apps; `/broadcasting/*` goes to the harness's auth endpoints (same origin). */
async function serve(out, authUrl) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (req.method === 'POST' && p.startsWith('/broadcasting/')) {
      const up = http.request(authUrl + req.url, { method: 'POST', headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      return req.pipe(up);
    }
    const file = path.normalize(path.join(out, p.endsWith('/') ? p + 'index.html' : p));
    if (p === '/favicon.ico') return res.writeHead(204).end();
    if (!file.startsWith(out + path.sep) || !existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, HOST, r));
  return {
    url: `http://${HOST}:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('framework apps built with Vite, in Chromium, on two chorus nodes with history in Redis', () => {
  let rds;
  let a; // the node the pages connect to (killed and restarted)
  let b; // the other node: publishes while `a` is down
  let auth;
  let out;
  let site;
  let br;
  const members = [];
  before(async () => {
    rds = await redis();
    const config = `adapter = "redis"\nredis_url = "${rds.url}"\nredis_prefix = "fw${process.pid}"\nnode_timeout = 5`;
    a = await chorus({ config, app: 'history_size = 1000' });
    b = await chorus({ config, app: 'history_size = 1000' });
    auth = await web(a);
    out = await mkdtemp(path.join(os.tmpdir(), 'chorus-sdk-frameworks-'));
    const t0 = Date.now();
    for (const app of APPS) await buildApp(app, out); // one at a time: 2 cores
    console.log(`# vite build of ${APPS.length} apps: ${Date.now() - t0} ms`);
    site = await serve(out, auth.url);
    br = await browser();
  });
  after(async () => {
    for (const m of members.splice(0)) m.disconnect();
    await br?.close();
    await site?.close();
    await auth?.close();
    await a?.stop();
    await b?.stop();
    await rds?.stop();
    if (out) await rm(out, { recursive: true, force: true });
  });

  /** A second presence member, connected to node `b`. */
  function member(id) {
    const headers = { 'X-Test-Token': 'let-me-in', 'X-User-Id': id, 'X-User-Name': 'User ' + id };
    const c = new Chorus({ key: APP.key, wsHost: HOST, wsPort: b.port, forceTLS: false, authEndpoint: auth.url + '/broadcasting/auth', auth: { headers } });
    members.push(c);
    return c;
  }

  test('the builds: laravel-echo (with pusher-js) only in the @laravel/echo-vue app; the engine (wasm) in all', () => {
    for (const app of APPS) {
      const assets = readdirSync(path.join(out, app.name, 'assets'));
      assert.ok(assets.some((f) => f.endsWith('.wasm')), `${app.name}: no wasm emitted: ${assets.join(', ')}`);
      const js = assets.filter((f) => f.endsWith('.js')).map((f) => readFileSync(path.join(out, app.name, 'assets', f), 'utf8')).join('\n');
      assert.ok(js.includes('client=chorus-js'), `${app.name}: the Chorus engine's URL is missing`);
      // Method names of laravel-echo's Echo class and pusher-js's connector survive minification.
      const echo = js.includes('connectorSupportsEncryptedPrivateChannels') && js.includes('Pusher client not found');
      assert.equal(echo, app.name === 'vue-echo', `${app.name}: laravel-echo ${echo ? 'bundled' : 'missing'}`);
    }
  });

  for (const app of APPS) {
    describe(app.what, () => {
      const orders = `private-orders.${app.name}`;
      const room = `presence-room.${app.name}`;
      const user = `private-App.Models.User.${app.user}`;
      const mine = [orders, room, user];
      let page;
      const errors = [];
      const rec = () => page.evaluate(() => window.rec);
      const waitRec = (check, what, timeout = 5000) =>
        until(async () => {
          const r = await rec();
          return check(r) && r;
        }, what, timeout);
      const orderNumbers = async () => (await rec()).orders.map((o) => o.n);
      const publish = (srv, from, to) =>
        range(from, to).reduce((p, n) => p.then(() => srv.pusher.trigger(orders, ORDER, { n })), Promise.resolve());
      after(async () => {
        await page?.close();
      });

      test('private, presence and notification events arrive', async () => {
        page = await br.context.newPage();
        page.on('pageerror', (e) => errors.push(String(e)));
        page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
        await page.goto(`${site.url}/${app.name}/?port=${a.port}&key=${APP.key}&user=${app.user}&tag=${app.name}`);
        await page.waitForFunction(() => window.appReady === true, null, { timeout: 10000 });

        await waitRec((r) => r.statuses.at(-1) === 'connected', 'useConnectionStatus: connected');
        await waitRec((r) => r.presence.length > 0, 'presence: here');
        await until(async () => {
          const o = await occupied(a);
          return mine.every((c) => o.includes(c));
        }, 'the three channels occupied');

        // Presence: another user joins (through node b) and leaves.
        const other = member('99');
        const joined = other.join(`room.${app.name}`);
        await waitRec((r) => r.presence.some((e) => e[0] === 'joining'), 'presence: joining');
        if (app.members) {
          const two = await waitRec((r) => r.members?.length === 2, 'members: two');
          assert.deepEqual(two.members, [app.user, '99']);
        }
        other.leaveChannel(joined.name);
        await waitRec((r) => r.presence.some((e) => e[0] === 'leaving'), 'presence: leaving');
        other.disconnect();
        let r = await rec();
        assert.deepEqual(r.presence, [
          ['here', [app.user]],
          ['joining', '99'],
          ['leaving', '99'],
        ]);
        if (app.members) await waitRec((x) => x.members?.length === 1, 'members: one');
        r = await rec();
        assert.deepEqual(r.members, app.members ? [app.user] : null);

        // A private event and a notification, from the HTTP API.
        await a.pusher.trigger(orders, ORDER, { n: 0 });
        const notification = { id: 'n-1', type: 'App\\Notifications\\InvoicePaid', amount: 12 };
        await a.pusher.trigger(user, NOTIFICATION, notification);
        r = await waitRec((x) => x.orders.length === 1 && x.notifications.length === 1, 'order and notification');
        assert.deepEqual(r.orders, [{ n: 0 }]);
        assert.deepEqual(r.notifications, [notification]);
        assert.deepEqual(dedupe(r.statuses).slice(-1), ['connected']);
        assert.deepEqual(realErrors(errors), []);
      });

      test('unmounting the component leaves its channels and nothing more arrives; mounting it again subscribes again', async () => {
        await page.click('#toggle');
        await page.waitForSelector('#status', { state: 'detached', timeout: 5000 });
        await until(async () => {
          const o = await occupied(a);
          return !mine.some((c) => o.includes(c));
        }, 'channels no longer occupied', 3000);
        await a.pusher.trigger(orders, ORDER, { n: 1 });
        await a.pusher.trigger(user, NOTIFICATION, { id: 'n-2', type: 'App\\Notifications\\InvoicePaid' });
        await sleep(300);
        let r = await rec();
        assert.deepEqual([r.orders.length, r.notifications.length], [1, 1], 'nothing arrives once unmounted');

        await page.click('#toggle');
        await waitRec((x) => x.mounts === 2, 'mounted again');
        await until(async () => {
          const o = await occupied(a);
          return mine.every((c) => o.includes(c));
        }, 'the three channels occupied again');
        await a.pusher.trigger(orders, ORDER, { n: 2 });
        r = await waitRec((x) => x.orders.length === 2, 'event after mounting again');
        assert.deepEqual(await orderNumbers(), [0, 2], 'the event published while unmounted is not replayed');
        assert.deepEqual(realErrors(errors), []);
      });

      test('node restart: status connected, then not, then connected; what the other node published meanwhile arrives once, in order', async () => {
        await publish(b, 3, 5);
        await until(async () => (await orderNumbers()).length === 4, 'live events through node b');
        const seen = (await rec()).statuses.length;

        await a.kill();
        try {
          await waitRec((r) => r.statuses.slice(seen).some((s) => s !== 'connected'), 'status leaves connected while node a is down');
          await publish(b, 5, 25); // while a is down
          await sleep(300);
          assert.deepEqual(await orderNumbers(), [0, 2, 3, 4], 'nothing arrives while the node is down');
        } finally {
          await a.start(); // also when failing: the next app needs it
        }
        const r = await waitRec((x) => x.statuses.at(-1) === 'connected' && x.statuses.length > seen + 1, 'connected again', 15000);
        const statuses = dedupe(r.statuses.slice(seen));
        console.log(`# ${app.name}: useConnectionStatus across the restart: connected → ${statuses.join(' → ')}`);
        assert.equal(statuses.at(-1), 'connected');
        assert.ok(statuses.length >= 2 && statuses.slice(0, -1).every((s) => s !== 'connected'), statuses.join(' '));

        if (app.name !== 'vue-echo') {
          // chorus-sdk's extra: the reconnect recovered the missed events (they follow, once).
          const { recovery } = await waitRec((x) => x.recovery, 'useEcho().recovery after the restart', 10000);
          assert.equal(recovery.recovered, true, JSON.stringify(recovery));
          assert.ok(recovery.replayed >= 20, JSON.stringify(recovery));
          if (app.name === 'react-chorus') {
            const r2 = await rec();
            assert.equal(r2.channelFns, r2.mounts, 'useEcho().channel kept its identity across the recovery');
          }
        }
        await publish(b, 25, 27); // live again
        await until(async () => (await orderNumbers()).length >= 26, 'all 26 events', 10000).catch(() => {}); // the diff below tells
        await sleep(300);
        assert.deepEqual(await orderNumbers(), [0, 2, ...range(3, 27)]);
        assert.deepEqual(realErrors(errors), []);
      });
    });
  }
});
