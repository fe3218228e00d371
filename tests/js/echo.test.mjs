// Laravel Echo (2.x, real package, ESM) + pusher-js against chorus:
// public / private channels, Laravel event naming, toOthers (socket_id exclusion),
// and channel authorization through a real HTTP `/broadcasting/auth` endpoint.

import assert from 'node:assert/strict';
import http from 'node:http';

import {
  APP,
  HOST,
  Recorder,
  barrier,
  connected,
  echoSubscribed,
  serverSdk,
  signedIn,
  subscribed,
  useChorus,
  waitUntil,
} from './lib/harness.mjs';

const chorus = useChorus();

chorus.test('Echo channel().listen() receives Laravel-namespaced and verbatim (.dotted) event names', async () => {
  const echo = chorus.echo();
  const namespaced = new Recorder('NewMessage');
  const verbatim = new Recorder('.custom');
  const dotted = new Recorder('.order.shipped');
  const all = new Recorder('listenToAll');
  echo
    .channel('chat.1')
    .listen('NewMessage', namespaced.fn)
    .listen('.custom', verbatim.fn)
    .listen('.order.shipped', dotted.fn)
    .listenToAll(all.fn);
  await echoSubscribed(echo, 'chat.1');

  // Laravel broadcasts App\Events\NewMessage under its class name.
  await chorus.sdk.trigger('chat.1', 'App\\Events\\NewMessage', { message: 'hola', user: { id: 1 } });
  await chorus.sdk.trigger('chat.1', 'custom', { n: 1 });
  await chorus.sdk.trigger('chat.1', 'order.shipped', { order: 99 });

  const [msg] = await namespaced.waitFor(1);
  assert.deepEqual(msg, { message: 'hola', user: { id: 1 } });
  assert.deepEqual((await verbatim.waitFor(1))[0], { n: 1 });
  assert.deepEqual((await dotted.waitFor(1))[0], { order: 99 });

  await barrier(chorus.sdk, 'chat.1', [echo]);
  assert.equal(namespaced.count, 1, 'NewMessage delivered exactly once');
  assert.deepEqual(
    all.calls.filter((n) => n !== '.test-barrier'),
    ['NewMessage', '.custom', '.order.shipped'],
    'listenToAll strips the App\\Events namespace and prefixes others with a dot, in order',
  );
  assert.equal(verbatim.count, 1, 'custom delivered exactly once');
  assert.equal(dotted.count, 1, 'order.shipped delivered exactly once');
});

chorus.test('Echo receives an event triggered on several channels at once (channels array)', async () => {
  const echo = chorus.echo();
  const a = new Recorder('multi-a');
  const b = new Recorder('multi-b');
  echo.channel('multi.a').listen('.Ping', a.fn);
  echo.channel('multi.b').listen('.Ping', b.fn);
  await echoSubscribed(echo, 'multi.a');
  await echoSubscribed(echo, 'multi.b');
  await chorus.sdk.trigger(['multi.a', 'multi.b', 'multi.nobody'], 'Ping', { x: 'y' });
  assert.deepEqual((await a.waitFor(1))[0], { x: 'y' });
  assert.deepEqual((await b.waitFor(1))[0], { x: 'y' });
});

chorus.test('Echo private() channel is authorized and receives events; other channels do not leak', async () => {
  const echo = chorus.echo();
  const got = new Recorder('private listen');
  const subscribedCb = new Recorder('subscribed()');
  echo.private('chat_privado.7').subscribed(subscribedCb.fn).listen('.MessageSent', got.fn);
  await subscribedCb.waitFor(1);
  await echoSubscribed(echo, 'private-chat_privado.7');

  await chorus.sdk.trigger('private-chat_privado.8', 'MessageSent', { wrong: true });
  await chorus.sdk.trigger('private-chat_privado.7', 'MessageSent', { body: 'secreto' });
  const [data] = await got.waitFor(1);
  assert.deepEqual(data, { body: 'secreto' });
  await barrier(chorus.sdk, 'private-chat_privado.7', [echo]);
  assert.equal(got.count, 1);
});

chorus.test('Echo encryptedPrivate() receives end-to-end encrypted events (server relays ciphertext)', async () => {
  // 32-byte master key; the SDK derives the per-channel shared_secret in the auth response.
  const masterKey = Buffer.alloc(32, 7).toString('base64');
  const sdk = serverSdk(chorus.server, { encryptionMasterKeyBase64: masterKey });
  const echo = chorus.echo({ sdk });
  const got = new Recorder('encrypted listen');
  echo.encryptedPrivate('vault.1').listen('.Secret', got.fn);
  await echoSubscribed(echo, 'private-encrypted-vault.1');

  // Observe the wire: the server must relay the {nonce, ciphertext} envelope untouched.
  const raw = new Recorder('raw');
  echo.connector.pusher.connection.bind('message', (ev) => ev.event === 'Secret' && raw.fn(ev));
  await sdk.trigger('private-encrypted-vault.1', 'Secret', { pin: 1234 });
  assert.deepEqual((await got.waitFor(1))[0], { pin: 1234 });
  const [ev] = await raw.waitFor(1);
  assert.equal(typeof ev.data.nonce, 'string');
  assert.equal(typeof ev.data.ciphertext, 'string');
  assert.ok(!JSON.stringify(ev.data).includes('1234'), 'plaintext must not be on the wire');
});

chorus.test('a private subscription with a forged signature is rejected and gets no events', async () => {
  const forged = ({ channelName }, cb) => cb(null, { auth: `${APP.key}:${'0'.repeat(64)}` });
  const pusher = chorus.pusher({ options: { channelAuthorization: { customHandler: forged } } });
  const connErrors = new Recorder('pusher:error');
  pusher.bind('pusher:error', connErrors.fn);
  const channel = pusher.subscribe('private-forged.1');
  const subErrors = new Recorder('subscription_error');
  const succeeded = new Recorder('subscription_succeeded');
  const events = new Recorder('events');
  channel.bind('pusher:subscription_error', subErrors.fn);
  channel.bind('pusher:subscription_succeeded', succeeded.fn);
  channel.bind('Secret', events.fn);
  await connected(pusher);

  // Pusher reports an invalid signature either as pusher:subscription_error on the
  // channel or as pusher:error on the connection.
  await waitUntil(() => subErrors.count + connErrors.count > 0, 'an error for the forged subscription');

  // A legitimately subscribed client is used as the ordering barrier.
  const legit = chorus.pusher();
  await connected(legit);
  await subscribed(legit, 'private-forged.1');
  await chorus.sdk.trigger('private-forged.1', 'Secret', { leaked: true });
  await barrier(chorus.sdk, 'private-forged.1', [legit]);
  assert.equal(succeeded.count, 0, 'forged subscription must not succeed');
  assert.equal(events.count, 0, 'forged subscriber must not receive channel events');
});

chorus.test("toOthers: trigger with socket_id excludes that connection only (broadcaster 'pusher')", async () => {
  const a = chorus.echo({ broadcaster: 'pusher' });
  const b = chorus.echo({ broadcaster: 'pusher' });
  const gotA = new Recorder('A OrderShipped');
  const gotB = new Recorder('B OrderShipped');
  a.channel('orders').listen('OrderShipped', gotA.fn);
  b.channel('orders').listen('OrderShipped', gotB.fn);
  await echoSubscribed(a, 'orders');
  await echoSubscribed(b, 'orders');
  const socketA = a.socketId();
  assert.match(socketA, /^\d+\.\d+$/, 'socket_id format');
  assert.notEqual(socketA, b.socketId(), 'socket ids are unique');

  // What Laravel's broadcast(...)->toOthers() does with the X-Socket-ID header.
  await chorus.sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 1 }, { socket_id: socketA });
  const [data] = await gotB.waitFor(1);
  assert.deepEqual(data, { id: 1 });
  await barrier(chorus.sdk, 'orders', [a, b]);
  assert.equal(gotA.count, 0, 'the excluded socket must not receive the event');

  // Same through triggerBatch's per-event socket_id.
  await chorus.sdk.triggerBatch([
    { channel: 'orders', name: 'App\\Events\\OrderShipped', data: { id: 2 }, socket_id: b.socketId() },
  ]);
  await gotA.waitFor(1);
  assert.deepEqual(gotA.calls[0], { id: 2 });
  await barrier(chorus.sdk, 'orders', [a, b]);
  assert.equal(gotB.count, 1, 'B excluded from the batch event');
});

// ---------------------------------------------------------------------------
// A real HTTP authorization endpoint, like Laravel's /broadcasting/auth
// ---------------------------------------------------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/**
 * Starts a tiny "Laravel app" on 127.0.0.1 that authorizes channels/users with
 * the pusher SDK. Tokens: "Bearer <userId>"; only users allowed by `canJoin`
 * get a signature, others get 403.
 */
async function startAuthApp(sdk, { canJoin }) {
  const requests = [];
  const srv = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const form = Object.fromEntries(new URLSearchParams(body));
    const userId = (req.headers.authorization || '').replace(/^Bearer /, '');
    requests.push({ url: req.url, form, userId });
    const reply = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    try {
      if (req.method === 'POST' && req.url === '/broadcasting/auth') {
        if (!userId || !canJoin(userId, form.channel_name)) return reply(403, { message: 'Forbidden' });
        const presence = form.channel_name.startsWith('presence-')
          ? { user_id: userId, user_info: { id: Number(userId), name: `User ${userId}` } }
          : undefined;
        return reply(200, sdk.authorizeChannel(form.socket_id, form.channel_name, presence));
      }
      if (req.method === 'POST' && req.url === '/broadcasting/user-auth') {
        if (!userId) return reply(403, { message: 'Forbidden' });
        return reply(200, sdk.authenticateUser(form.socket_id, { id: userId, name: `User ${userId}` }));
      }
      reply(404, { message: 'not found' });
    } catch (err) {
      reply(500, { message: String(err) });
    }
  });
  await new Promise((resolve) => srv.listen(0, HOST, resolve));
  return {
    url: `http://${HOST}:${srv.address().port}`,
    requests,
    close: () => new Promise((resolve) => srv.close(resolve)),
  };
}

chorus.test('Echo authorizes private and presence channels through a real HTTP /broadcasting/auth', async () => {
  const app = await startAuthApp(chorus.sdk, { canJoin: (user, channel) => channel.endsWith('.7') || channel.startsWith('presence-') });
  chorus.onCleanup(app.close);
  // Echo's default path: authEndpoint + auth.headers, pusher-js's own ajax transport (Node XHR).
  const echo = chorus.echo({
    sdkAuth: false,
    options: {
      authEndpoint: `${app.url}/broadcasting/auth`,
      auth: { headers: { Authorization: 'Bearer 7' } },
    },
  });
  const got = new Recorder('private via http auth');
  echo.private('orders.7').listen('.Paid', got.fn);
  await echoSubscribed(echo, 'private-orders.7');
  await chorus.sdk.trigger('private-orders.7', 'Paid', { amount: 10 });
  assert.deepEqual((await got.waitFor(1))[0], { amount: 10 });

  const here = new Recorder('here');
  echo.join('lobby.7').here(here.fn);
  const [members] = await here.waitFor(1);
  assert.deepEqual(members, [{ id: 7, name: 'User 7' }]);

  const authCalls = app.requests.filter((r) => r.url === '/broadcasting/auth');
  assert.equal(authCalls.length, 2, 'one auth request per private/presence channel');
  assert.equal(authCalls[0].form.channel_name, 'private-orders.7');
  assert.equal(authCalls[0].form.socket_id, echo.socketId());
  assert.equal(authCalls[1].form.channel_name, 'presence-lobby.7');
});

chorus.test('a 403 from /broadcasting/auth surfaces as Echo .error() and the channel stays unsubscribed', async () => {
  const app = await startAuthApp(chorus.sdk, { canJoin: (user, channel) => channel.endsWith('.7') });
  chorus.onCleanup(app.close);
  const echo = chorus.echo({
    sdkAuth: false,
    options: {
      authEndpoint: `${app.url}/broadcasting/auth`,
      auth: { headers: { Authorization: 'Bearer 8' } },
    },
  });
  const errors = new Recorder('Echo .error()');
  const events = new Recorder('events');
  echo.private('orders.9').error(errors.fn).listen('.Paid', events.fn);
  const [err] = await errors.waitFor(1);
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 403);
  const channel = echo.connector.pusher.channel('private-orders.9');
  assert.equal(channel.subscribed, false);

  // The server never saw a subscription, so nothing is delivered.
  const legit = chorus.pusher();
  await subscribed(legit, 'private-orders.9');
  await chorus.sdk.trigger('private-orders.9', 'Paid', { amount: 1 });
  await barrier(chorus.sdk, 'private-orders.9', [legit]);
  assert.equal(events.count, 0);
});

chorus.test('signin through a real HTTP user-auth endpoint, then sendToUser reaches the user', async () => {
  const app = await startAuthApp(chorus.sdk, { canJoin: () => false });
  chorus.onCleanup(app.close);
  const pusher = chorus.pusher({
    sdkAuth: false,
    options: {
      userAuthentication: {
        endpoint: `${app.url}/broadcasting/user-auth`,
        transport: 'ajax',
        headers: { Authorization: 'Bearer 55' },
      },
    },
  });
  const got = new Recorder('user event');
  pusher.user.bind('invoice-ready', got.fn);
  pusher.signin();
  const userData = await signedIn(pusher);
  assert.equal(userData.id, '55');
  await chorus.sdk.sendToUser('55', 'invoice-ready', { invoice: 3 });
  assert.deepEqual((await got.waitFor(1))[0], { invoice: 3 });
  assert.equal(app.requests.filter((r) => r.url === '/broadcasting/user-auth').length, 1);
});
