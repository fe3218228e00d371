// Node tests of the built npm package (npm/, installed here as `chorus-sdk` through a file:
// dependency, so its `exports` map is what resolves) against a real chorus server, plus a fake
// WebSocket server for close codes and backoff.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { WebSocket, WebSocketServer } from 'ws';

import { Chorus } from 'chorus-sdk';
import { APP, HOST, NPM_DIR, chorus, freePort, proxy, redis, sleep, until, web } from './lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// Node 20 has no global WebSocket: the SDK uses whatever `globalThis.WebSocket` is.
globalThis.WebSocket = WebSocket;

const clients = [];
function client(srv, webUrl, user = '1', extra = {}) {
  const headers = { 'X-Test-Token': 'let-me-in', 'X-User-Id': user, 'X-User-Name': 'User ' + user };
  const c = new Chorus({
    key: APP.key,
    wsHost: HOST,
    wsPort: srv.port,
    forceTLS: false,
    authEndpoint: webUrl + '/broadcasting/auth',
    auth: { headers },
    userAuthentication: { endpoint: webUrl + '/broadcasting/user-auth', headers },
    ...extra,
  });
  const rec = { states: [], errors: [] };
  c.connection.on('state_change', (s) => rec.states.push(s.current));
  c.connection.on('error', (e) => rec.errors.push(e));
  c.rec = rec;
  clients.push(c);
  return c;
}

const once = (register) => new Promise((resolve) => register(resolve));
const connected = (c, what = 'connected') => until(() => c.connection.state === 'connected', what);
function subscribedOnce(ch) {
  return once((r) => {
    let done = false;
    ch.subscribed(() => {
      if (!done) {
        done = true;
        r();
      }
    });
  });
}

function cleanup() {
  for (const c of clients.splice(0)) c.disconnect();
}

describe('package', () => {
  test('npm pack lists the wasm, the JS, the types and the node entry', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: NPM_DIR, encoding: 'utf8' });
    const files = JSON.parse(out)[0].files.map((f) => f.path);
    const entries = ['echo', 'vue', 'react'];
    const expected = ['dist/chorus.js', 'dist/chorus_sdk_bg.wasm', 'dist/crypto.js', 'index.d.ts', 'hooks.d.ts', 'node.js', 'package.json', 'README.md'];
    for (const f of [...expected, ...entries.flatMap((e) => [`dist/${e}.js`, `${e}.d.ts`])]) {
      assert.ok(files.includes(f), `${f} missing from npm pack: ${files.join(', ')}`);
    }
    const pkg = JSON.parse(readFileSync(path.join(NPM_DIR, 'package.json'), 'utf8'));
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.exports['.'].default, './dist/chorus.js');
    assert.equal(pkg.exports['.'].types, './index.d.ts');
    for (const e of entries) assert.deepEqual(pkg.exports['./' + e], { types: `./${e}.d.ts`, default: `./dist/${e}.js` });
  });

  test('the main entry carries none of the others: no Echo connector, hooks or crypto unless imported', () => {
    const main = readFileSync(path.join(NPM_DIR, 'dist', 'chorus.js'), 'utf8');
    // Its only import is the crypto file, dynamically (on the first encrypted channel).
    assert.deepEqual(main.match(/\bimport\s*\(?\s*["'][^"']*["']/g), ['import("./crypto.js"']);
    for (const marker of ['onConnectionChange', 'configureEcho', 'useEcho', 'X-Socket-Id', 'poly1305']) {
      assert.ok(!main.includes(marker), `dist/chorus.js contains ${marker}`);
    }
    // The framework entries reach the engine through the package name (one engine per app) and
    // keep their frameworks external.
    const imports = (f) => [...readFileSync(path.join(NPM_DIR, 'dist', f), 'utf8').matchAll(/from\s*"([^"]+)"/g)].map((m) => m[1]).sort();
    assert.deepEqual(imports('echo.js'), ['chorus-sdk']);
    assert.deepEqual(imports('vue.js'), ['chorus-sdk/echo', 'vue']);
    assert.deepEqual(imports('react.js'), ['chorus-sdk/echo', 'react']);
  });

  // tsc runs with the project's tsconfig (strict) and --strict on top. usage.ts has typical usage
  // and negative cases under `// @ts-expect-error`: a directive with no error under it is itself
  // an error (TS2578), so types widened to `any` make this fail.
  const TYPES_DIR = path.join(HERE, 'types');
  const tsc = (project) =>
    execFileSync(path.join(HERE, 'node_modules', '.bin', 'tsc'), ['-p', project, '--strict', '--pretty', 'false'], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
  /** Runs tsc on a throwaway project in types/ (it extends types/tsconfig.json); returns its output and whether it failed. */
  function tscScratch(files, compilerOptions = {}) {
    const dir = mkdtempSync(path.join(TYPES_DIR, '.scratch-'));
    try {
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
      const config = { extends: '../tsconfig.json', compilerOptions, files: Object.keys(files).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')) };
      writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
      try {
        return { failed: false, out: tsc(path.join(dir, 'tsconfig.json')) };
      } catch (e) {
        return { failed: true, out: String(e.stdout) + String(e.stderr) };
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('the TypeScript types compile for typical usage and reject misuse (tsc --noEmit, strict)', () => {
    const config = JSON.parse(readFileSync(path.join(TYPES_DIR, 'tsconfig.json'), 'utf8'));
    assert.equal(config.compilerOptions.strict, true, 'types/tsconfig.json must be strict');
    const usage = readFileSync(path.join(TYPES_DIR, 'usage.ts'), 'utf8');
    const expected = usage.split('\n').filter((l) => /^\s*\/\/ @ts-expect-error/.test(l)).length;
    assert.ok(expected >= 30, `only ${expected} negative cases in usage.ts`);
    tsc(path.join(TYPES_DIR, 'tsconfig.json'));
  });

  // Ways the types could silently widen; each must make some negative case of usage.ts fail.
  const WIDENINGS = {
    "listen<T>'s data": ['cb: (data: T, meta?: EventMeta) => void): this;\n  listenToAll', 'cb: (data: any, meta?: EventMeta) => void): this;\n  listenToAll'],
    'ConnectionState': ["export type ConnectionState =\n  | 'initialized'", "export type ConnectionState =\n  | string\n  | 'initialized'"],
    'connection events': [
      'on<E extends keyof ConnectionEvents>(event: E, cb: (data: ConnectionEvents[E]) => void): this;',
      'on(event: string, cb: (data: any) => void): this;',
    ],
    'connecting_in': ['connecting_in: number;', 'connecting_in: any;'],
    'ChorusError': ['error: ChorusError;', 'error: any;'],
    'option types': ['wsPort?: number;', 'wsPort?: any;'],
    'unknown options': ['export interface ChorusOptions {', 'export interface ChorusOptions {\n  [option: string]: any;'],
    'whisper on public channels': ['export class Channel {', 'export class Channel {\n  whisper(event: string, data: unknown): this;'],
    'whisper chains': ['whisper(event: string, data: unknown): this;', 'whisper(event: string, data: unknown): any;'],
    'encrypted channels': ['encryptedPrivate(name: string): EncryptedChannel;', 'encryptedPrivate(name: string): PresenceChannel;'],
    'watchlist events': ["on(event: 'online' | 'offline',", 'on(event: string,'],
    'auth header functions': ['headers?: Record<string, string> | (() => Record<string, string>); params', 'headers?: Record<string, string> | (() => any); params'],
    'presence members': ['here(cb: (members: I[]) => void): this;', 'here(cb: (members: any[]) => void): this;'],
    'socketId()': ['socketId(): string | undefined;', 'socketId(): any;'],
    'position': ['readonly position: StreamPosition | undefined;', 'readonly position: any;'],
  };

  test('type check self-test: an unused @ts-expect-error fails; each way of widening the types fails usage.ts', () => {
    // This compiler reports an unused directive as an error.
    const unused = tscScratch({
      'check.ts': "import type { ConnectionState } from 'chorus-sdk';\n// @ts-expect-error\nexport const s: ConnectionState = 'connected';\n",
    });
    assert.ok(unused.failed && /TS2578/.test(unused.out), `an unused @ts-expect-error compiled: ${unused.out}`);
    // usage.ts against widened copies of index.d.ts: unused directives (TS2578), nothing else.
    const usage = readFileSync(path.join(TYPES_DIR, 'usage.ts'), 'utf8');
    const types = readFileSync(path.join(NPM_DIR, 'index.d.ts'), 'utf8');
    for (const [what, [from, to]] of Object.entries(WIDENINGS)) {
      assert.ok(types.includes(from), `index.d.ts changed: no ${JSON.stringify(from)} (${what})`);
      const r = tscScratch({ 'usage.ts': usage, 'widened.d.ts': types.replace(from, to) }, { paths: { 'chorus-sdk': ['./widened.d.ts'] } });
      const errors = r.out.split('\n').filter((l) => /error TS\d+/.test(l));
      assert.ok(r.failed && errors.length > 0, `usage.ts still compiles with ${what} widened`);
      assert.deepEqual(errors.filter((l) => !/error TS2578/.test(l)), [], `${what}: errors other than unused directives`);
    }
  });

  test('what a page downloads (wasm + JS, gzip) is no larger than pusher-js + laravel-echo (gzip)', () => {
    // The budget is measured, not assumed: gzip -9 of what a page loads for pusher-js + Echo.
    const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
    const dep = (name) => path.join(HERE, 'node_modules', name);
    const version = (name) => JSON.parse(readFileSync(path.join(dep(name), 'package.json'), 'utf8')).version;
    const pusherJs = gz(path.join(dep('pusher-js'), 'dist', 'web', 'pusher.min.js'));
    const echo = gz(path.join(dep('laravel-echo'), 'dist', 'echo.js'));
    const budget = pusherJs + echo;
    let raw = 0;
    let sdk = 0;
    const parts = [];
    for (const f of ['dist/chorus_sdk_bg.wasm', 'dist/chorus.js']) {
      const bytes = readFileSync(path.join(NPM_DIR, f));
      const g = gzipSync(bytes, { level: 9 }).length;
      raw += bytes.length;
      sdk += g;
      parts.push(`${f} ${bytes.length} raw / ${g} gzip`);
    }
    console.log(
      `# pusher-js ${version('pusher-js')} dist/web/pusher.min.js ${pusherJs} B gzip + laravel-echo ${version('laravel-echo')} dist/echo.js ${echo} B gzip = budget ${budget} B`,
    );
    console.log(`# sdk download: ${sdk} B gzip (${raw} B raw): ${parts.join(', ')}`);
    assert.ok(sdk <= budget, `the SDK download is ${sdk} B gzip, over pusher-js + laravel-echo (${budget} B)`);
  });
});

describe('against chorus', () => {
  let srv;
  let app;
  before(async () => {
    srv = await chorus();
    app = await web(srv);
  });
  after(async () => {
    cleanup();
    await app?.close();
    await srv?.stop();
  });

  test('connects by itself; states are observable; disconnect and connect resubscribe', async () => {
    const c = client(srv, app.url);
    assert.equal(c.connection.state, 'initialized');
    const got = [];
    const ch = c.channel('states.1').listen('.Ping', (d) => got.push(d));
    await subscribedOnce(ch);
    assert.deepEqual(c.rec.states, ['connecting', 'connected']);
    assert.match(c.socketId(), /^\d+\.\d+$/);
    assert.equal(c.connection.socket_id, c.socketId());

    c.disconnect();
    await until(() => c.connection.state === 'disconnected', 'disconnected');
    assert.equal(c.socketId(), undefined);

    const again = subscribedOnce(ch);
    c.connect();
    await again;
    assert.deepEqual(c.rec.states, ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    await srv.pusher.trigger('states.1', 'Ping', { n: 1 });
    await until(() => got.length === 1, 'event after reconnect');
    assert.deepEqual(got, [{ n: 1 }]);
  });

  test('public channel: Echo naming, listenToAll, stopListening', async () => {
    const c = client(srv, app.url);
    const verbatim = [];
    const namespaced = [];
    const all = [];
    const ch = c
      .channel('chat.1')
      .listen('.NewMessage', (d) => verbatim.push(d))
      .listen('NewMessage', (d) => namespaced.push(d))
      .listenToAll((e, d) => all.push([e, d]));
    await subscribedOnce(ch);
    await srv.pusher.trigger('chat.1', 'NewMessage', { a: 1 });
    await srv.pusher.trigger('chat.1', 'App\\Events\\NewMessage', { b: 2 });
    await until(() => all.length === 2, 'two events');
    assert.deepEqual(verbatim, [{ a: 1 }]);
    assert.deepEqual(namespaced, [{ b: 2 }]);
    assert.deepEqual(all, [
      ['.NewMessage', { a: 1 }],
      ['NewMessage', { b: 2 }],
    ]);

    ch.stopListening('.NewMessage');
    await srv.pusher.trigger('chat.1', 'NewMessage', { a: 2 });
    await until(() => all.length === 3, 'third event');
    assert.deepEqual(verbatim, [{ a: 1 }]);
  });

  test('private channel: authorization with headers, whisper between two clients, server events', async () => {
    const a = client(srv, app.url, '1');
    const b = client(srv, app.url, '2');
    const seen = { a: [], b: [], msgA: [], msgB: [] };
    const chA = a
      .private('chat_privado.7')
      .listen('MensajePrivado', (d) => seen.msgA.push(d))
      .listenForWhisper('typing', (d) => seen.a.push(d));
    const chB = b
      .private('chat_privado.7')
      .listen('MensajePrivado', (d) => seen.msgB.push(d))
      .listenForWhisper('typing', (d) => seen.b.push(d));
    await Promise.all([subscribedOnce(chA), subscribedOnce(chB)]);

    const req = app.state.requests.find((r) => r.socketId === a.socketId() && r.channel === 'private-chat_privado.7');
    assert.ok(req, 'auth request for a');
    assert.equal(req.headers['x-test-token'], 'let-me-in');
    assert.match(req.headers['content-type'], /application\/x-www-form-urlencoded/);

    assert.equal(a.private('chat_privado.7').whisper('typing', { userId: 1 }), a.private('chat_privado.7'), 'whisper chains');
    await until(() => seen.b.length === 1, 'whisper reaches b');
    assert.deepEqual(seen.b, [{ userId: 1 }]);
    await sleep(100);
    assert.deepEqual(seen.a, [], 'a whisper is not echoed to its sender');

    await srv.pusher.trigger('private-chat_privado.7', 'App\\Events\\MensajePrivado', { text: 'hola' });
    await until(() => seen.msgA.length === 1 && seen.msgB.length === 1, 'server event on both');
    assert.deepEqual(seen.msgA, [{ text: 'hola' }]);
  });

  test('presence channel: here, joining, leaving, members', async () => {
    const a = client(srv, app.url, '1');
    const b = client(srv, app.url, '2');
    const log = [];
    const hereA = once((r) =>
      a
        .join('room.1')
        .here((m) => r(m))
        .joining((m) => log.push(['joining', m]))
        .leaving((m) => log.push(['leaving', m])),
    );
    assert.deepEqual(await hereA, [{ id: '1', name: 'User 1' }]);
    const hereB = once((r) => b.join('room.1').here(r));
    const membersB = await hereB;
    assert.deepEqual(membersB.map((m) => m.id).sort(), ['1', '2']);
    await until(() => log.length === 1, 'joining');
    assert.deepEqual(log[0], ['joining', { id: '2', name: 'User 2' }]);
    assert.deepEqual(a.join('room.1').members().map((m) => m.id).sort(), ['1', '2']);

    b.leave('room.1');
    await until(() => log.length === 2, 'leaving');
    assert.deepEqual(log[1], ['leaving', { id: '2', name: 'User 2' }]);
  });

  test('refused authorization is surfaced as an error (channel and connection)', async () => {
    const c = client(srv, app.url);
    const err = await once((r) => c.private('forbidden.1').error(r));
    assert.equal(err.type, 'AuthError');
    assert.equal(err.status, 403);
    await until(() => c.rec.errors.length === 1, 'connection error event');
    assert.equal(c.rec.errors[0].type, 'AuthError');
    assert.equal(c.rec.errors[0].data.status, 403);
    assert.equal(c.rec.errors[0].data.channel, 'private-forbidden.1');
  });

  test('notifications on App.Models.User.1', async () => {
    const c = client(srv, app.url);
    const got = [];
    const ch = c.private('App.Models.User.1').notification((n) => got.push(n));
    await subscribedOnce(ch);
    await srv.pusher.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
      id: 'n1',
      type: 'App\\Notifications\\Hello',
    });
    await until(() => got.length === 1, 'notification');
    assert.equal(got[0].id, 'n1');
  });

  test('signin: user authentication and events sent to the user', async () => {
    const c = client(srv, app.url, '7');
    const user = await once((r) => {
      c.connection.on('signin_success', r);
      c.signin();
    });
    assert.equal(user.id, '7');
    await until(() => c._client.subscribed('#server-to-user-7'), 'server-to-user channel');
    const got = once((r) => c.user.on('hello', r));
    await srv.pusher.sendToUser('7', 'hello', { x: 1 });
    assert.deepEqual(await got, { x: 1 });
  });

  test('leaveChannel and leaveAllChannels unsubscribe on the server', async () => {
    const c = client(srv, app.url);
    const occupied = async () => {
      const res = await srv.pusher.get({ path: '/channels', params: { filter_by_prefix: 'leave-' } });
      return Object.keys((await res.json()).channels).sort();
    };
    await Promise.all(['leave-a', 'leave-b', 'leave-c'].map((n) => subscribedOnce(c.channel(n))));
    assert.deepEqual(await occupied(), ['leave-a', 'leave-b', 'leave-c']);
    c.leaveChannel('leave-a');
    await until(async () => (await occupied()).length === 2, 'leave-a left');
    c.leaveAllChannels();
    await until(async () => (await occupied()).length === 0, 'all left');
  });

  test('an unknown app key fails without reconnecting (close code 4001)', async () => {
    const c = client(srv, app.url, '1', { key: 'no-such-key' });
    await until(() => c.connection.state === 'failed', 'failed', 5000);
    const codes = c.rec.errors.map((e) => e.data?.code);
    assert.ok(codes.includes(4001), `errors: ${JSON.stringify(c.rec.errors)}`);
  });

  // Runs last in this group: it kills and restarts the server.
  test('server killed and restarted: every client is back and resubscribed within ~3 s, retries spread', async () => {
    const n = 12;
    const cs = [];
    const got = [];
    for (let i = 0; i < n; i++) {
      const c = client(srv, app.url, String(i + 1));
      c.subs = 0;
      c.private('recover.1')
        .subscribed(() => {
          c.subs++;
          c.backAt = Date.now();
        })
        .listen('.Tick', () => got.push(i));
      cs.push(c);
    }
    await until(() => cs.every((c) => c.subs === 1), 'all subscribed', 10000);
    // One of them is also signed in as user 1 (its #server-to-user-1 channel must come back too).
    cs[0].signin();
    await until(() => cs[0]._client.subscribed('#server-to-user-1'), 'signed in');
    const userEvents = [];
    cs[0].user.on('direct', (d) => userEvents.push(d));
    // Two of them are in a presence channel: after the restart `here` fires again by itself.
    const heres = [[], []];
    cs[0].join('restart.1').here((m) => heres[0].push(m.map((x) => x.id)));
    cs[1].join('restart.1').here((m) => heres[1].push(m.map((x) => x.id)));
    const ids = (c) => c.join('restart.1').members().map((m) => m.id).sort();
    await until(() => heres[0].length === 1 && heres[1].length === 1, 'here before the restart');
    await until(() => ids(cs[0]).join() === '1,2', 'both members before the restart');

    await srv.kill();
    await until(() => cs.every((c) => c.connection.state !== 'connected'), 'all noticed the outage');
    await sleep(1500);
    await srv.start();
    const up = Date.now();
    await until(() => cs.every((c) => c.subs === 2), 'all resubscribed', 10000);
    const times = cs.map((c) => c.backAt - up).sort((x, y) => x - y);
    console.log(`# recovery after restart (ms, per client): ${times.join(' ')}`);
    assert.ok(times[n - 1] <= 3500, `slowest client back after ${times[n - 1]} ms`);
    assert.ok(times[n - 1] - times[0] >= 100, `no jitter: ${times.join(' ')}`);

    await srv.pusher.trigger('private-recover.1', 'Tick', {});
    await until(() => got.length === n, 'listeners fire again without app code');
    await until(() => cs[0]._client.subscribed('#server-to-user-1'), 'signed in again');
    await srv.pusher.sendToUser('1', 'direct', { ok: true });
    await until(() => userEvents.length === 1, 'user event after reconnect');
    await until(() => heres[0].length === 2 && heres[1].length === 2, 'here again after the restart');
    await until(() => ids(cs[0]).join() === '1,2' && ids(cs[1]).join() === '1,2', 'both members again');
  });
});

// History and recovery against real chorus processes. A TCP proxy between the SDK and chorus
// simulates the outage: it drops every connection and refuses new ones for a few seconds, and the
// SDK reconnects by itself.
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

/** Subscribes `c` to `name` and records what the app sees. */
function feed(c, name) {
  const r = { got: [], subs: [], recovered: [], failed: [] };
  r.ch = c
    .channel(name)
    .listen('.Msg', (d) => r.got.push(d.n))
    .subscribed((info) => r.subs.push(info))
    .recovered((x) => r.recovered.push(x))
    .recoveryFailed((x) => r.failed.push(x));
  return r;
}

/** Publishes `Msg {n}` for n in [from, to), one after the other (`gap` ms apart). */
async function publish(srv, channel, from, to, gap = 0) {
  for (let n = from; n < to; n++) {
    await srv.pusher.trigger(channel, 'Msg', { n });
    if (gap) await sleep(gap);
  }
}

/**
 * The outage: cuts the proxy, waits until the client noticed, runs `during` (publishing), keeps
 * the proxy refusing until `ms` have passed, then lets connections through again.
 */
async function outage(c, px, ms, during) {
  const t0 = Date.now();
  px.cut();
  await until(() => c.connection.state !== 'connected', 'the client noticed the outage');
  await during();
  const left = ms - (Date.now() - t0);
  assert.ok(left > 0, `publishing took longer than the outage (${ms} ms)`);
  await sleep(left);
  px.restore();
}

describe('history and recovery (local)', () => {
  let srv;
  let app;
  let px;
  before(async () => {
    srv = await chorus({ app: 'history_size = 1000\nhistory_ttl = 300' });
    app = await web(srv);
  });
  after(async () => {
    cleanup();
    await px?.close();
    await app?.close();
    await srv?.stop();
  });

  test('a client cut off for 3 s while 200 events are published gets all of them after reconnecting, once, in order', async () => {
    px = await proxy(srv.port);
    const c = client({ port: px.port }, app.url);
    const r = feed(c, 'feed.local');
    await until(() => r.subs.length === 1, 'subscribed');
    assert.deepEqual(r.subs, [{ recovered: false }]);
    await publish(srv, 'feed.local', 0, 5);
    await until(() => r.got.length === 5, 'live events before the outage');
    assert.deepEqual(r.ch.position?.offset, 5);

    await outage(c, px, 3000, () => publish(srv, 'feed.local', 5, 205));
    assert.deepEqual(r.got, range(0, 5), 'nothing arrives during the outage');
    // Live events keep coming while the client reconnects and recovers.
    await publish(srv, 'feed.local', 205, 235, 50);
    await until(() => r.got.length >= 235, 'all 235 events', 15000);
    await sleep(200);
    assert.deepEqual(r.got, range(0, 235));
    assert.deepEqual(r.subs, [{ recovered: false }, { recovered: true }]);
    assert.equal(r.recovered.length, 1);
    assert.ok(r.recovered[0].recovered === true && r.recovered[0].replayed >= 200, JSON.stringify(r.recovered));
    assert.deepEqual(r.failed, []);
    assert.ok(c.rec.states.filter((s) => s === 'connected').length === 2, c.rec.states.join(' '));
    await px.close();
    px = null;
  });

  test("events the client's own requests excluded (toOthers) are not replayed to it after an outage", async () => {
    const px2 = await proxy(srv.port);
    try {
      const c = client({ port: px2.port }, app.url);
      const r = feed(c, 'feed.others');
      await until(() => r.subs.length === 1, 'subscribed');
      const mine = c.socketId();
      assert.ok(mine, 'socket id known');
      // The app sent these with its X-Socket-ID (Laravel's toOthers()) just as the network dropped.
      await outage(c, px2, 2000, async () => {
        for (let n = 0; n < 6; n++) {
          await srv.pusher.trigger('feed.others', 'Msg', { n }, n % 2 ? { socket_id: mine } : {});
        }
      });
      await until(() => r.subs.length === 2, 'resubscribed');
      await publish(srv, 'feed.others', 6, 7);
      await until(() => r.got.includes(6), 'live event after recovery');
      assert.deepEqual(r.got, [0, 2, 4, 6], 'the excluded events stay excluded');
      assert.deepEqual(r.subs, [{ recovered: false }, { recovered: true }]);
    } finally {
      await px2.close();
    }
  });

  test('a new subscription (leave, then subscribe again) starts fresh: no recovery', async () => {
    const c = client(srv, app.url);
    const r = feed(c, 'feed.fresh');
    await until(() => r.subs.length === 1, 'subscribed');
    await publish(srv, 'feed.fresh', 0, 3);
    await until(() => r.got.length === 3, 'three events');
    c.leaveChannel('feed.fresh');
    await publish(srv, 'feed.fresh', 3, 6);
    const r2 = feed(c, 'feed.fresh');
    await until(() => r2.subs.length === 1, 'subscribed again');
    await publish(srv, 'feed.fresh', 6, 7);
    await until(() => r2.got.length === 1, 'live event');
    assert.deepEqual(r2.got, [6], 'events of before the new subscription are not replayed');
    assert.deepEqual(r2.subs, [{ recovered: false }]);
    assert.deepEqual([r2.recovered, r2.failed], [[], []]);
  });

  test('history too short for the outage: a typed recovery-failed event (expired), then live events', async () => {
    const small = await chorus({ app: 'history_size = 10' });
    const px2 = await proxy(small.port);
    try {
      const c = client({ port: px2.port }, app.url);
      const r = feed(c, 'feed.small');
      await until(() => r.subs.length === 1, 'subscribed');
      await publish(small, 'feed.small', 0, 3);
      await until(() => r.got.length === 3, 'live events');
      await outage(c, px2, 2500, () => publish(small, 'feed.small', 3, 203));
      await until(() => r.failed.length === 1, 'recovery failed', 10000);
      assert.deepEqual(r.failed, [{ recovered: false, replayed: 0, reason: 'expired' }]);
      assert.deepEqual(r.recovered, []);
      assert.deepEqual(r.subs, [{ recovered: false }, { recovered: false }]);
      await publish(small, 'feed.small', 203, 205);
      await until(() => r.got.length === 5, 'live events after the failed recovery');
      assert.deepEqual(r.got, [0, 1, 2, 203, 204], 'nothing replayed: the app refetches');
      c.disconnect();
    } finally {
      await px2.close();
      await small.stop();
    }
  });

  // Kills and restarts the server (a new epoch): runs last in this group.
  test('server restarted (history starts over): recovery failed with reason epoch_changed', async () => {
    const c = client(srv, app.url);
    const r = feed(c, 'feed.restart');
    await until(() => r.subs.length === 1, 'subscribed');
    await publish(srv, 'feed.restart', 0, 3);
    await until(() => r.got.length === 3, 'live events');
    const before = r.ch.position;
    await srv.kill();
    await until(() => c.connection.state !== 'connected', 'outage noticed');
    await srv.start();
    await until(() => r.failed.length === 1, 'recovery failed', 10000);
    assert.deepEqual(r.failed, [{ recovered: false, replayed: 0, reason: 'epoch_changed' }]);
    assert.deepEqual(r.subs, [{ recovered: false }, { recovered: false }]);
    assert.notEqual(r.ch.position.epoch, before.epoch, 'the new epoch replaced the old position');
    await publish(srv, 'feed.restart', 3, 4);
    await until(() => r.got.length === 4, 'live event after the restart');
    assert.deepEqual(r.got, [0, 1, 2, 3]);
  });
});

describe('history and recovery (two nodes, Redis)', () => {
  let rds;
  let a;
  let b;
  let app;
  before(async () => {
    rds = await redis();
    const config = `adapter = "redis"\nredis_url = "${rds.url}"\nredis_prefix = "sdk${process.pid}"\nnode_timeout = 5`;
    a = await chorus({ config, app: 'history_size = 1000' });
    b = await chorus({ config, app: 'history_size = 1000' });
    app = await web(a);
  });
  after(async () => {
    cleanup();
    await app?.close();
    await a?.stop();
    await b?.stop();
    await rds?.stop();
  });

  test('cut off from node A for 3 s while 200 events are published, the client reconnects to node B and gets all of them, once, in order', async () => {
    const px = await proxy(a.port);
    try {
      const c = client({ port: px.port }, app.url);
      const r = feed(c, 'feed.cluster');
      await until(() => r.subs.length === 1, 'subscribed on node A');
      // Published on B, delivered by A: the cluster is working.
      await publish(b, 'feed.cluster', 0, 5);
      await until(() => r.got.length === 5, 'live events before the outage');

      await outage(c, px, 3000, async () => {
        px.target = b.port; // the reconnect goes to the other node
        await publish(a, 'feed.cluster', 5, 205);
      });
      await publish(b, 'feed.cluster', 205, 235, 50);
      await until(() => r.got.length >= 235, 'all 235 events', 15000);
      await sleep(200);
      assert.deepEqual(r.got, range(0, 235));
      assert.deepEqual(r.subs, [{ recovered: false }, { recovered: true }]);
      assert.equal(r.recovered.length, 1);
      assert.ok(r.recovered[0].replayed >= 200, JSON.stringify(r.recovered));
      assert.deepEqual(r.failed, []);
      assert.deepEqual(px.targets.slice(-1), [b.port], `connections went to ${px.targets.join(', ')}`);
      assert.equal(px.targets[0], a.port);
    } finally {
      await px.close();
    }
  });
});

describe('close codes and backoff (fake server)', () => {
  let wss;
  let port;
  let behave = () => {};
  const conns = [];
  before(async () => {
    port = await freePort();
    wss = new WebSocketServer({ host: HOST, port });
    wss.on('connection', (ws, req) => {
      const entry = { at: Date.now(), ws, url: req.url };
      conns.push(entry);
      behave(ws, entry);
    });
  });
  after(async () => {
    cleanup();
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
  });
  const established = (ws) =>
    ws.send(JSON.stringify({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: '1.1', activity_timeout: 30 }) }));
  const fake = (extra = {}) => client({ port }, 'http://127.0.0.1:9', '1', extra);

  test('4001-4099: no reconnect, state failed', async () => {
    conns.length = 0;
    behave = (ws) => {
      established(ws);
      setTimeout(() => ws.close(4003, 'App disabled'), 50);
    };
    const c = fake();
    await until(() => c.connection.state === 'failed', 'failed');
    await sleep(1500);
    assert.equal(conns.length, 1, 'no reconnect attempt');
    assert.equal(c.rec.errors[0].data.code, 4003);
    assert.ok(conns[0].url.startsWith('/app/app-key?protocol=7'), conns[0].url);
    c.disconnect();
  });

  test('4000 (SSL only): the next attempt uses wss:// on wssPort, ws:// is not retried', async () => {
    // pusher-js does the same ("tls_only"): 4000 is the one code of 4000-4099 that reconnects.
    // A TLS WebSocket server (self-signed certificate) on its own port stands for the wss:// side.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chorus-sdk-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
    ], { stdio: 'ignore' });
    const ca = readFileSync(cert);
    const tlsServer = https.createServer({ key: readFileSync(key), cert: ca });
    const tls = new WebSocketServer({ server: tlsServer });
    const tlsConns = [];
    tls.on('connection', (ws, req) => {
      tlsConns.push({ at: Date.now(), ws, url: req.url });
      established(ws);
      // The first TLS connection is refused with 4000 too: already on TLS, the client backs off.
      if (tlsConns.length === 1) setTimeout(() => ws.close(4000, 'SSL only'), 50);
    });
    await new Promise((r) => tlsServer.listen(0, HOST, r));
    const tlsPort = tlsServer.address().port;
    // Every URL the SDK opens; wss:// trusts the test certificate.
    const urls = [];
    globalThis.WebSocket = class extends WebSocket {
      constructor(url, protocols) {
        urls.push(String(url));
        super(url, protocols, { ca });
      }
    };
    conns.length = 0;
    behave = (ws) => {
      established(ws);
      setTimeout(() => ws.close(4000, 'SSL only'), 50);
    };
    try {
      const c = fake({ wssPort: tlsPort });
      await until(() => tlsConns.length === 1, 'a wss:// attempt', 5000);
      const switched = tlsConns[0].at - conns[0].at - 50;
      assert.ok(switched < 500, `switched to wss:// after ${switched} ms`);
      // 4000 again, now on wss://: the client stays on TLS and backs off (no loop of retries).
      await until(() => tlsConns.length === 2 && c.connection.state === 'connected', 'connected over TLS', 5000);
      const again = tlsConns[1].at - tlsConns[0].at - 50;
      assert.ok(again >= 950, `retried wss:// after ${again} ms`);
      assert.deepEqual(c.rec.errors.map((e) => e.data.code), [4000, 4000]);
      assert.ok(!c.rec.states.includes('failed'), c.rec.states.join(' '));
      await sleep(300);
      c.disconnect();
      assert.equal(conns.length, 1, 'ws:// was tried again after 4000');
      assert.deepEqual(
        urls.map((u) => u.replace(/\/app\/.*/, '')),
        [`ws://${HOST}:${port}`, `wss://${HOST}:${tlsPort}`, `wss://${HOST}:${tlsPort}`],
      );
      assert.ok(tlsConns[0].url.startsWith('/app/app-key?protocol=7'), tlsConns[0].url);
    } finally {
      globalThis.WebSocket = WebSocket;
      for (const ws of tls.clients) ws.terminate();
      await new Promise((r) => tls.close(r));
      tlsServer.closeAllConnections();
      await new Promise((r) => tlsServer.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('4200-4299: reconnect at once', async () => {
    conns.length = 0;
    behave = (ws) => {
      established(ws);
      if (conns.length === 1) setTimeout(() => ws.close(4200, 'Reconnect'), 50);
    };
    const c = fake();
    await until(() => conns.length === 2, 'second connection');
    const gap = conns[1].at - conns[0].at - 50;
    assert.ok(gap < 300, `reconnected after ${gap} ms`);
    c.disconnect();
  });

  test('4100-4199: back off at least a second', async () => {
    conns.length = 0;
    behave = (ws) => {
      established(ws);
      if (conns.length === 1) setTimeout(() => ws.close(4100, 'Over capacity'), 50);
    };
    const c = fake();
    await until(() => conns.length === 2, 'second connection', 5000);
    const gap = conns[1].at - conns[0].at - 50;
    assert.ok(gap >= 950, `reconnected after ${gap} ms`);
    c.disconnect();
  });

  test('dropped connections: exponential backoff with full jitter, capped', async () => {
    conns.length = 0;
    behave = (ws) => ws.terminate();
    const n = 8;
    const cs = [];
    for (let i = 0; i < n; i++) {
      const c = fake({ reconnectBaseDelay: 100, maxReconnectDelay: 1000 });
      cs.push(c);
    }
    await sleep(5000);
    for (const c of cs) c.disconnect();
    const total = conns.length;
    // Without backoff 8 clients would make hundreds of attempts in 5 s; with it (100 ms * 1.6^k,
    // cap 1 s, jittered) roughly 8 * 8.
    assert.ok(total < 8 * 20, `${total} attempts in 5 s`);
    assert.ok(total > 8 * 3, `${total} attempts in 5 s`);
    // Jitter: the attempts of different clients do not line up.
    const times = conns.map((e) => e.at).sort((x, y) => x - y);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const bunched = gaps.filter((g) => g < 5).length;
    assert.ok(bunched < gaps.length / 2, `attempts bunched together: ${bunched} of ${gaps.length} gaps < 5 ms`);
  });

  test('the backoff never exceeds maxReconnectDelay, however many attempts fail', async () => {
    conns.length = 0;
    behave = (ws) => ws.terminate();
    const cap = 200;
    const c = fake({ reconnectBaseDelay: 50, maxReconnectDelay: cap });
    const delays = [];
    c.connection.on('connecting_in', (ms) => delays.push(ms));
    // 50 ms * 1.6^k passes the cap after 4 steps; without it, 40 attempts (several seconds of
    // outage) would draw most delays far above 200 ms.
    await until(() => delays.length >= 40 || delays.some((d) => d > cap), '40 failed attempts', 20000);
    c.disconnect();
    const late = delays.slice(10);
    console.log(`# backoff delays (ms, cap ${cap}): ${delays.map((d) => Math.round(d)).join(' ')}`);
    assert.ok(Math.max(...delays) <= cap, `a delay above the cap: ${Math.max(...delays)} ms`);
    // The steps did grow to the cap (full jitter: draws spread over [0, cap)).
    assert.ok(Math.max(...late) > cap / 2, `late delays stay small: ${late.join(' ')}`);
    // And the attempts really are that close: on average no further apart than the cap (the
    // average, not each gap, so that a busy machine's stalls do not count; uncapped, the gaps would
    // grow to seconds).
    const times = conns.map((e) => e.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps.length >= 35, `${conns.length} attempts`);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    assert.ok(mean <= cap, `mean gap ${Math.round(mean)} ms between attempts: ${gaps.join(' ')}`);
  });

  test('unavailable while no server answers, connected once one does', async () => {
    const port2 = await freePort();
    const c = client({ port: port2 }, 'http://127.0.0.1:9', '1', { unavailableTimeout: 500, maxReconnectDelay: 300 });
    await until(() => c.connection.state === 'unavailable', 'unavailable', 3000);
    const wss2 = new WebSocketServer({ host: HOST, port: port2 });
    wss2.on('connection', (ws) => established(ws));
    try {
      await until(() => c.connection.state === 'connected', 'connected', 3000);
      assert.deepEqual(c.rec.states, ['connecting', 'unavailable', 'connected']);
    } finally {
      c.disconnect();
      for (const ws of wss2.clients) ws.terminate();
      await new Promise((r) => wss2.close(r));
    }
  });

  test('history positions: recover only on resubscribing, duplicates dropped, outcomes on the channel', async () => {
    conns.length = 0;
    const subscribes = [];
    const frame = (ws, f) => ws.send(JSON.stringify({ channel: 'pos.1', ...f }));
    const msg = (ws, n, position) => frame(ws, { event: 'Msg', data: JSON.stringify({ n }), ...(position && { position }) });
    const succeeded = (ws, extra) => frame(ws, { event: 'pusher_internal:subscription_succeeded', data: '{}', ...extra });
    behave = (ws) => {
      established(ws);
      ws.on('message', (text) => {
        const f = JSON.parse(text);
        if (f.event !== 'pusher:subscribe') return;
        subscribes.push(f.data);
        const e1 = (offset) => ({ epoch: 'e1', offset });
        switch (subscribes.length) {
          case 1:
            succeeded(ws, { position: e1(5) });
            msg(ws, 6, e1(6));
            msg(ws, 7, e1(7));
            msg(ws, 7, e1(7)); // a duplicate
            msg(ws, 6, e1(6)); // an old one
            msg(ws, 100); // no position (e.g. a whisper): delivered, position unchanged
            setTimeout(() => ws.close(4200, 'Reconnect'), 100);
            break;
          case 2:
            // Recovered: `position` is the newest (9); the replayed 8 and 9 follow.
            succeeded(ws, { position: e1(9), recovery: { recovered: true, replayed: 2 } });
            msg(ws, 8, e1(8));
            msg(ws, 9, e1(9));
            setTimeout(() => ws.close(4200, 'Reconnect'), 100);
            break;
          default:
            succeeded(ws, { position: { epoch: 'e2', offset: 3 }, recovery: { recovered: false, replayed: 0, reason: 'epoch_changed' } });
            msg(ws, 4, { epoch: 'e2', offset: 4 });
        }
      });
    };
    const c = fake();
    const r = { got: [], subs: [], recovered: [], failed: [], all: [] };
    const ch = c
      .channel('pos.1')
      .listen('.Msg', (d) => r.got.push(d.n))
      .listenToAll((e) => r.all.push(e))
      .subscribed((info) => r.subs.push(info))
      .recovered((x) => r.recovered.push(x))
      .recoveryFailed((x) => r.failed.push(x));
    await until(() => r.got.length === 6, 'six events', 5000);
    await sleep(100);
    assert.deepEqual(r.got, [6, 7, 100, 8, 9, 4]);
    assert.deepEqual(r.all.length, 6, 'listenToAll sees no chorus: events');
    assert.deepEqual(
      subscribes.map((d) => d.recover),
      // With the socket the channel last heard from, whose toOthers() events are not replayed.
      [undefined, { epoch: 'e1', offset: 7, socket_id: '1.1' }, { epoch: 'e1', offset: 9, socket_id: '1.1' }],
    );
    assert.deepEqual(r.subs, [{ recovered: false }, { recovered: true }, { recovered: false }]);
    assert.deepEqual(r.recovered, [{ recovered: true, replayed: 2 }]);
    assert.deepEqual(r.failed, [{ recovered: false, replayed: 0, reason: 'epoch_changed' }]);
    assert.deepEqual(ch.position, { epoch: 'e2', offset: 4 });
    c.disconnect();
  });

  test('missing pong: the socket is dropped and replaced', async () => {
    conns.length = 0;
    // Answers nothing after the handshake (pings included), like a frozen server.
    behave = (ws) => established(ws);
    const c = fake({ activityTimeout: 300, pongTimeout: 300 });
    await until(() => conns.length >= 2, 'reconnect after missing pong', 3000);
    const gap = conns[1].at - conns[0].at;
    assert.ok(gap >= 550 && gap < 1500, `replaced after ${gap} ms`);
    c.disconnect();
  });
});
