// The rest of Echo / pusher-js parity in the SDK, in Node against a real chorus: auth headers that
// change after construction (function, mutation, headersProvider), custom authorizers (Echo's
// `authorizer`, pusher-js 8's `customHandler`), the CSRF token from the page's meta tag, `wsPath`,
// presence `me`, the user's watchlist, subscription counts and cache misses.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { WebSocket, WebSocketServer } from 'ws';

import { Chorus } from 'chorus-sdk';
import { APP, HOST, chorus, freePort, until, web } from './lib/harness.mjs';

globalThis.WebSocket = WebSocket;

const clients = [];
function client(srv, extra) {
  const c = new Chorus({ key: APP.key, wsHost: HOST, wsPort: srv.port, forceTLS: false, ...extra });
  c.errors = [];
  c.connection.on('error', (e) => c.errors.push(e));
  clients.push(c);
  return c;
}
const subscribed = (ch) => new Promise((r) => ch.subscribed(() => r()));
const user = (id) => ({ 'X-User-Id': id, 'X-User-Name': 'User ' + id });

describe('auth and options', () => {
  let srv;
  let app;
  before(async () => {
    srv = await chorus({ app: 'enable_subscription_count = true' });
    app = await web(srv);
  });
  after(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await app?.close();
    await srv?.stop();
  });
  const lastAuth = (c, channel) => app.state.requests.filter((r) => r.socketId === c.socketId() && r.channel === channel).at(-1);

  test('auth headers are read at each request: a function, a mutated object, headersProvider', async () => {
    let token = 'wrong';
    const a = client(srv, { authEndpoint: app.url + '/broadcasting/auth', auth: { headers: () => ({ 'X-Test-Token': token, ...user('1') }) } });
    const err = await new Promise((r) => a.private('fn.1').error(r));
    assert.equal(err.status, 401, 'the first token is refused');
    token = 'let-me-in'; // refreshed
    a.leaveChannel('private-fn.1');
    await subscribed(a.private('fn.1'));
    assert.equal(lastAuth(a, 'private-fn.1').headers['x-test-token'], 'let-me-in');

    const headers = { 'X-Test-Token': 'wrong' };
    const b = client(srv, { authEndpoint: app.url + '/broadcasting/auth', auth: { headers } });
    await new Promise((r) => b.private('obj.1').error(r));
    b.options.auth.headers['X-Test-Token'] = 'let-me-in'; // what apps do with Echo.connector.options
    b.leaveChannel('private-obj.1');
    await subscribed(b.private('obj.1'));

    let n = 0;
    const c = client(srv, {
      channelAuthorization: { endpoint: app.url + '/broadcasting/auth', headersProvider: () => ({ 'X-Test-Token': 'let-me-in', 'X-Call': String(++n) }) },
    });
    await subscribed(c.private('provider.1'));
    await subscribed(c.private('provider.2'));
    assert.equal(lastAuth(c, 'private-provider.1').headers['x-call'], '1');
    assert.equal(lastAuth(c, 'private-provider.2').headers['x-call'], '2');
  });

  test("Echo's `authorizer` and pusher-js's `customHandler` authorize without the endpoint", async () => {
    const asked = [];
    const a = client(srv, {
      authorizer: (channel) => ({
        authorize: (socketId, cb) => {
          asked.push(['authorizer', channel.name]);
          cb(null, srv.pusher.authorizeChannel(socketId, channel.name));
        },
      }),
    });
    await subscribed(a.private('custom.1'));
    const b = client(srv, {
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, cb) => {
          asked.push(['customHandler', channelName]);
          if (channelName.includes('no')) return cb(Object.assign(new Error('refused'), { status: 403 }), null);
          cb(null, srv.pusher.authorizeChannel(socketId, channelName, { user_id: '7', user_info: { name: 'Seven' } }));
        },
      },
    });
    const room = b.join('custom.2');
    await subscribed(room);
    const err = await new Promise((r) => b.private('no.1').error(r));
    assert.equal(err.status, 403);
    assert.deepEqual(asked, [
      ['authorizer', 'private-custom.1'],
      ['customHandler', 'presence-custom.2'],
      ['customHandler', 'private-no.1'],
    ]);
    assert.deepEqual(room.me, { id: '7', info: { name: 'Seven' } }, 'presence `me`');
  });

  test("the CSRF token comes from the page's meta tag when not given", async () => {
    globalThis.document = { querySelector: (q) => (q === 'meta[name="csrf-token"]' ? { content: 'from-meta' } : null) };
    try {
      const a = client(srv, { authEndpoint: app.url + '/broadcasting/auth', auth: { headers: { 'X-Test-Token': 'let-me-in' } } });
      await subscribed(a.private('csrf.1'));
      assert.equal(lastAuth(a, 'private-csrf.1').headers['x-csrf-token'], 'from-meta');
      const b = client(srv, { csrfToken: 'given', authEndpoint: app.url + '/broadcasting/auth', auth: { headers: { 'X-Test-Token': 'let-me-in' } } });
      await subscribed(b.private('csrf.1'));
      assert.equal(lastAuth(b, 'private-csrf.1').headers['x-csrf-token'], 'given');
    } finally {
      delete globalThis.document;
    }
  });

  test('subscription counts and cache misses reach the channel', async () => {
    const a = client(srv, {});
    const counts = [];
    const ch = a.channel('counted.1').on('pusher:subscription_count', (d) => counts.push(d.subscription_count));
    await subscribed(ch);
    const b = client(srv, {});
    await subscribed(b.channel('counted.1'));
    await until(() => counts.at(-1) === 2, 'count 2');
    assert.equal(ch.subscriptionCount, 2);
    b.leaveChannel('counted.1');
    await until(() => counts.at(-1) === 1, 'count 1');
    assert.equal(ch.subscriptionCount, 1);

    let missed = 0;
    const cache = a.channel('cache-prices').on('pusher:cache_miss', () => missed++);
    await subscribed(cache);
    await until(() => missed === 1, 'cache miss');
  });
});

test('wsPath goes before /app/{key}', async () => {
  const port = await freePort();
  const wss = new WebSocketServer({ host: HOST, port });
  const urls = [];
  wss.on('connection', (ws, req) => {
    urls.push(req.url);
    ws.close(4001, 'test');
  });
  try {
    const c = client({ port }, { wsPath: '/realtime' });
    await until(() => urls.length === 1, 'connection');
    assert.match(urls[0], /^\/realtime\/app\/app-key\?protocol=7&/);
    c.disconnect();
  } finally {
    await new Promise((r) => wss.close(r));
  }
});

describe('watchlist', () => {
  let srv;
  let authServer;
  let url;
  before(async () => {
    srv = await chorus();
    // User authentication whose user_data carries a watchlist.
    authServer = http.createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const id = req.headers['x-user-id'];
      const answer = srv.pusher.authenticateUser(form.get('socket_id'), { id, watchlist: id === 'ann' ? ['bob'] : [] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
    await new Promise((r) => authServer.listen(0, HOST, r));
    url = `http://${HOST}:${authServer.address().port}/`;
  });
  after(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    authServer?.closeAllConnections?.();
    await new Promise((r) => authServer?.close(r));
    await srv?.stop();
  });

  test('chorus.user.watchlist says when watched users come online and go offline', async () => {
    const ann = client(srv, { userAuthentication: { endpoint: url, headers: { 'X-User-Id': 'ann' } } });
    const seen = [];
    ann.user.watchlist.on('online', (e) => seen.push(['online', e.user_ids]));
    ann.user.watchlist.on('offline', (e) => seen.push(['offline', e.user_ids]));
    ann.signin();
    await new Promise((r) => ann.connection.on('signin_success', r));
    const bob = client(srv, { userAuthentication: { endpoint: url, headers: { 'X-User-Id': 'bob' } } });
    bob.signin();
    await until(() => seen.some((e) => e[0] === 'online' && e[1].includes('bob')), 'bob online');
    bob.disconnect();
    await until(() => seen.some((e) => e[0] === 'offline'), 'bob offline');
    assert.deepEqual(
      seen.filter((e) => e[1].length),
      [
        ['online', ['bob']],
        ['offline', ['bob']],
      ],
    );
  });
});
