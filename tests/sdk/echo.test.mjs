// `chorus-sdk/echo` in Node against a real chorus: the real laravel-echo 2.5 with
// `broadcaster: ChorusConnector` must behave as Echo does with pusher-js. Each scenario runs twice,
// once on `broadcaster: 'reverb'` + pusher-js (Echo's own behaviour, the reference) and once on the
// connector, and the two recordings must be equal. Then the end-to-end encrypted channels: what the
// `pusher` server SDK sends with `encryptionMasterKeyBase64` arrives decrypted, through the
// connector and the SDK, with one re-authorization when the key changes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import Echo from 'laravel-echo';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import { WebSocket } from 'ws';

import { ChorusConnector, ChorusEcho } from 'chorus-sdk/echo';
import { APP, HOST, chorus, sleep, until, web } from './lib/harness.mjs';

globalThis.WebSocket = WebSocket;

const echos = [];
function makeEcho(kind, srv, app, user) {
  const headers = { 'X-Test-Token': 'let-me-in', 'X-User-Id': user, 'X-User-Name': 'User ' + user };
  const common = {
    key: APP.key,
    wsHost: HOST,
    wsPort: srv.port,
    forceTLS: false,
    authEndpoint: app.url + '/broadcasting/auth',
    auth: { headers },
    withoutInterceptors: true,
  };
  const e =
    kind === 'pusher-js'
      ? new Echo({ ...common, broadcaster: 'reverb', Pusher: PusherJs, enabledTransports: ['ws'], disableStats: true })
      : new Echo({ ...common, broadcaster: ChorusConnector });
  echos.push(e);
  return e;
}

const subscribed = (ch) => new Promise((r) => ch.subscribed(() => r()));
const byId = (list) => [...list].sort((a, b) => String(a.id).localeCompare(String(b.id)));
const dedupe = (list) => list.filter((s, i) => s !== list[i - 1]);

async function occupied(srv) {
  const res = await srv.pusher.get({ path: '/channels' });
  return Object.keys((await res.json()).channels).sort();
}

/** Everything an app sees through Echo's API, in order. */
async function scenario(kind, srv, app) {
  const log = [];
  const push = (...e) => log.push(e);
  const a = makeEcho(kind, srv, app, '1');
  const statuses = [];
  const stopStatuses = a.connector.onConnectionChange((s) => statuses.push(s));

  const pub = a.channel('pub.1').listen('NewMessage', (d) => push('ns', d)).listen('.Raw', (d) => push('raw', d));
  pub.listenToAll((e, d) => push('all', e, d));
  const room = a.private('room.1').listen('.Msg', (d) => push('private', d)).listenForWhisper('typing', (d) => push('whisper', d));
  const lobby = a
    .join('lobby')
    .here((m) => push('here', byId(m)))
    .joining((m) => push('joining', m))
    .leaving((m) => push('leaving', m));
  const notify = (n) => push('notification', n);
  const user = a.private('App.Models.User.1').notification(notify);
  await Promise.all([pub, room, lobby, user].map(subscribed));
  await until(() => log.some((e) => e[0] === 'here'), 'here');
  push('status', a.connectionStatus());
  push('socket', /^\d+\.\d+$/.test(a.socketId()));

  await srv.pusher.trigger('pub.1', 'App\\Events\\NewMessage', { n: 1 });
  await srv.pusher.trigger('pub.1', 'Raw', { n: 2 });
  await srv.pusher.trigger('private-room.1', 'Msg', { n: 3 });
  await until(() => log.filter((e) => e[0] === 'private').length === 1, 'private event');
  // Without an argument: Echo's pusher channel cannot remove one listenToAll callback (it binds a wrapper).
  pub.stopListening('.Raw').stopListeningToAll();
  await srv.pusher.trigger('pub.1', 'Raw', { n: 4 });
  await srv.pusher.trigger('pub.1', 'App\\Events\\NewMessage', { n: 5 });
  await until(() => log.filter((e) => e[0] === 'ns').length === 2, 'second namespaced event');

  const b = makeEcho(kind, srv, app, '2');
  const bRoom = b.private('room.1');
  await Promise.all([subscribed(bRoom), subscribed(b.join('lobby'))]);
  await until(() => log.some((e) => e[0] === 'joining'), 'joining');
  const chained = bRoom.whisper('typing', { from: 2 });
  push('whisper chains', chained === bRoom);
  await until(() => log.some((e) => e[0] === 'whisper'), 'whisper');

  const note = { id: 'n1', type: 'App\\Notifications\\Hello', text: 'hi' };
  await srv.pusher.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', note);
  await until(() => log.some((e) => e[0] === 'notification'), 'notification');
  user.stopListeningForNotification(notify);
  await srv.pusher.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', { ...note, id: 'n2' });

  b.leave('lobby');
  await until(() => log.some((e) => e[0] === 'leaving'), 'leaving');
  b.disconnect();

  // Occupancy is the server's view of leave/leaveChannel/leaveAllChannels.
  a.leaveChannel('pub.1');
  await until(async () => !(await occupied(srv)).includes('pub.1'), 'pub.1 vacated');
  push('channels', Object.keys(a.connector.channels).sort());
  a.leaveAllChannels();
  await until(async () => (await occupied(srv)).length === 0, 'every channel vacated');
  push('channels after leaveAllChannels', Object.keys(a.connector.channels));

  a.disconnect();
  await until(() => a.connectionStatus() === 'disconnected', 'disconnected');
  await sleep(100);
  stopStatuses();
  push('statuses', dedupe(statuses));
  return log;
}

describe('laravel-echo with ChorusConnector behaves as with pusher-js', () => {
  let srv;
  let app;
  before(async () => {
    srv = await chorus();
    app = await web(srv);
  });
  after(async () => {
    for (const e of echos.splice(0)) e.disconnect();
    await app?.close();
    await srv?.stop();
  });

  test('channels, namespaces, whisper, presence, notifications, leaving, statuses: the same recording', async () => {
    const reference = await scenario('pusher-js', srv, app);
    const ours = await scenario('chorus', srv, app);
    assert.deepEqual(ours, reference);
    // What the recording holds, so that an empty run cannot pass.
    const kinds = new Set(reference.map((e) => e[0]));
    for (const k of ['ns', 'raw', 'all', 'private', 'whisper', 'here', 'joining', 'leaving', 'notification', 'statuses'])
      assert.ok(kinds.has(k), `reference has ${k}`);
    assert.equal(reference.filter((e) => e[0] === 'notification').length, 1, 'stopListeningForNotification stops');
  });

  test("Echo's X-Socket-ID interceptors use the connector's socket id", async () => {
    const used = [];
    globalThis.axios = Object.assign(() => {}, { interceptors: { request: { use: (f) => used.push(f) } } });
    try {
      const headers = { 'X-Test-Token': 'let-me-in' };
      const e = new Echo({ broadcaster: ChorusConnector, key: APP.key, wsHost: HOST, wsPort: srv.port, forceTLS: false, auth: { headers } });
      echos.push(e);
      assert.equal(used.length, 1, 'Echo registered its axios interceptor');
      await until(() => e.socketId(), 'socket id');
      const config = used[0]({ headers: {} });
      assert.equal(config.headers['X-Socket-Id'], e.socketId());
      // Our own Echo (for the hooks, without laravel-echo) registers the same.
      const own = new ChorusEcho({ key: APP.key, wsHost: HOST, wsPort: srv.port, forceTLS: false });
      echos.push(own);
      assert.equal(used.length, 2);
      await until(() => own.socketId(), 'socket id');
      assert.equal(used[1]({ headers: {} }).headers['X-Socket-Id'], own.socketId());
    } finally {
      delete globalThis.axios;
    }
  });

  test('connection statuses: connecting, connected, reconnecting while the server is down, connected again', async () => {
    const e = makeEcho('chorus', srv, app, '1');
    const seen = [e.connectionStatus()];
    e.connector.onConnectionChange((s) => seen.push(s));
    await until(() => e.connectionStatus() === 'connected', 'connected');
    await srv.kill();
    await until(() => e.connectionStatus() === 'reconnecting', 'reconnecting');
    await srv.start();
    await until(() => e.connectionStatus() === 'connected', 'connected again', 15000);
    assert.deepEqual(dedupe(seen), ['connecting', 'connected', 'reconnecting', 'connected']);
  });
});

describe('end-to-end encrypted channels (private-encrypted-*)', () => {
  let srv;
  let app;
  const key1 = randomBytes(32).toString('base64');
  const key2 = randomBytes(32).toString('base64');
  let authKey = key1; // the master key the auth endpoint signs with
  const sdk = (masterKey) =>
    new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: HOST, port: String(srv.port), useTLS: false, encryptionMasterKeyBase64: masterKey });
  before(async () => {
    srv = await chorus();
    // The auth endpoint answers with the `shared_secret` of the current master key.
    const signer = {
      authorizeChannel: (...a) => sdk(authKey).authorizeChannel(...a),
      authenticateUser: (...a) => sdk(authKey).authenticateUser(...a),
    };
    app = await web({ port: srv.port, pusher: signer });
  });
  after(async () => {
    for (const e of echos.splice(0)) e.disconnect();
    await app?.close();
    await srv?.stop();
  });

  test('the connector decrypts what the pusher SDK encrypts with the master key', async () => {
    authKey = key1;
    const e = makeEcho('chorus', srv, app, '1');
    assert.throws(() => e.encryptedPrivate('vault.1'), /does not support encrypted/, "Echo 2.5 refuses custom connectors here; the connector's method is the way");
    const got = [];
    const ch = e.connector.encryptedPrivateChannel('vault.1').listen('.Secret', (d) => got.push(d));
    await subscribed(ch);
    await sdk(key1).trigger('private-encrypted-vault.1', 'Secret', { text: 'über geheim', n: 1 });
    await until(() => got.length === 1, 'decrypted event');
    assert.deepEqual(got, [{ text: 'über geheim', n: 1 }]);
  });

  test('a changed key: one re-authorization, then the event; an undecryptable event is dropped and reported', async () => {
    authKey = key1;
    const e = makeEcho('chorus', srv, app, '1');
    const chorusClient = e.connector.chorus;
    const errors = [];
    chorusClient.connection.on('error', (err) => errors.push(err));
    const got = [];
    const ch = e.connector.encryptedPrivateChannel('vault.2').listen('.Secret', (d) => got.push(d.n));
    await subscribed(ch);
    const auths = () => app.state.requests.filter((r) => r.channel === 'private-encrypted-vault.2' && r.socketId === chorusClient.socketId()).length;
    assert.equal(auths(), 1);

    await sdk(key1).trigger('private-encrypted-vault.2', 'Secret', { n: 1 });
    await until(() => got.length === 1, 'first event');
    // The app rotates its master key: the next event needs a new shared secret.
    authKey = key2;
    await sdk(key2).trigger('private-encrypted-vault.2', 'Secret', { n: 2 });
    await sdk(key2).trigger('private-encrypted-vault.2', 'Secret', { n: 3 });
    await until(() => got.length === 3, 'events after the key change');
    assert.deepEqual(got, [1, 2, 3], 'in order, none lost while re-authorizing');
    assert.equal(auths(), 2, 'one re-authorization');

    // A key nobody authorizes: re-authorizing does not help, the event is dropped and reported.
    await sdk(randomBytes(32).toString('base64')).trigger('private-encrypted-vault.2', 'Secret', { n: 4 });
    await sdk(key2).trigger('private-encrypted-vault.2', 'Secret', { n: 5 });
    await until(() => got.length === 4, 'the event after the bad one');
    assert.deepEqual(got, [1, 2, 3, 5]);
    assert.deepEqual(
      errors.map((x) => [x.type, x.data]),
      [['DecryptionError', { channel: 'private-encrypted-vault.2', event: 'Secret' }]],
    );
    assert.equal(auths(), 3, 'one more re-authorization for the bad event, not one per event');
  });

  test('an auth answer without shared_secret fails the subscription', async () => {
    // A backend without the master key configured answers without `shared_secret`.
    const signer = {
      authorizeChannel: (...a) => {
        const { shared_secret: _, ...rest } = sdk(key1).authorizeChannel(...a);
        return rest;
      },
    };
    const plain = await web({ port: srv.port, pusher: signer });
    try {
      const headers = { 'X-Test-Token': 'let-me-in' };
      const e = new Echo({ broadcaster: ChorusConnector, key: APP.key, wsHost: HOST, wsPort: srv.port, forceTLS: false, authEndpoint: plain.url + '/broadcasting/auth', auth: { headers }, withoutInterceptors: true });
      echos.push(e);
      const err = await new Promise((r) => e.connector.encryptedPrivateChannel('vault.3').error(r));
      assert.equal(err.type, 'AuthError');
      assert.ok(!(await occupied(srv)).includes('private-encrypted-vault.3'), 'not subscribed');
    } finally {
      await plain.close();
    }
  });
});
