// Connection lifecycle as pusher-js / Echo see it: handshake, heartbeat,
// unknown app key (4001), wrong path (4005), connection quota (4004), unsubscribe.

import assert from 'node:assert/strict';

import {
  Recorder,
  barrier,
  connected,
  defaultApp,
  pingBarrier,
  pusherErrorCode,
  subscribed,
  useChorus,
  waitUntil,
} from './lib/harness.mjs';

const LIMITED = { id: 'limited-id', key: 'limited-key', secret: 'limited-secret' };
const chorus = useChorus({
  activityTimeout: 30,
  apps: [defaultApp(), defaultApp({ ...LIMITED, max_connections: 2 })],
});

chorus.test('GET /up answers 200', async () => {
  const res = await fetch(`${chorus.server.httpUrl}/up`);
  assert.equal(res.status, 200);
});

chorus.test('handshake: pusher:connection_established gives a socket_id and activity_timeout 30', async () => {
  const pusher = chorus.pusher();
  const established = new Recorder('connection_established');
  pusher.connection.bind('message', (ev) => ev.event === 'pusher:connection_established' && established.fn(ev));
  const socketId = await connected(pusher);
  assert.match(socketId, /^\d+\.\d+$/);
  // pusher-js uses min(client default 120 s, server value) => 30 s from the config.
  assert.equal(pusher.connection.activityTimeout, 30000);
  assert.equal(pusher.connection.state, 'connected');
});

chorus.test('Echo reports connection status changes', async () => {
  const echo = chorus.echo();
  const statuses = new Recorder('status');
  echo.connector.onConnectionChange(statuses.fn);
  await connected(echo);
  assert.equal(echo.connectionStatus(), 'connected');
  echo.disconnect();
  await waitUntil(() => echo.connectionStatus() === 'disconnected', 'Echo disconnected status');
  assert.ok(statuses.calls.includes('connected'));
});

chorus.test('pusher:ping is answered with pusher:pong', async () => {
  const pusher = chorus.pusher();
  await connected(pusher);
  assert.equal(await pingBarrier(pusher), 'pong');
  assert.equal(await pingBarrier(pusher), 'pong');
});

chorus.test('an unknown app key is refused with error 4001 and pusher-js does not retry', async () => {
  const pusher = chorus.pusher({ key: 'no-such-key' });
  const codes = new Recorder('error codes');
  pusher.connection.bind('error', (e) => codes.fn(pusherErrorCode(e)));
  const states = [];
  pusher.connection.bind('state_change', ({ current }) => states.push(current));
  await codes.waitFor(1);
  assert.ok(codes.calls.includes(4001), `expected 4001, got ${JSON.stringify(codes.calls)}`);
  await waitUntil(() => pusher.connection.state === 'disconnected' || pusher.connection.state === 'failed', 'client to give up');
  assert.ok(!states.includes('connected'), `must never reach connected: ${states}`);
});

chorus.test('a wrong wsPath is refused with error 4005 and pusher-js does not retry', async () => {
  // As behind a proxy that keeps a prefix: the socket opens on /ws/app/{key}.
  const pusher = chorus.pusher({ options: { wsPath: '/ws' } });
  const codes = new Recorder('error codes');
  pusher.connection.bind('error', (e) => codes.fn(pusherErrorCode(e)));
  const states = [];
  pusher.connection.bind('state_change', ({ current }) => states.push(current));
  await codes.waitFor(1);
  assert.ok(codes.calls.includes(4005), `expected 4005, got ${JSON.stringify(codes.calls)}`);
  await waitUntil(() => pusher.connection.state === 'disconnected' || pusher.connection.state === 'failed', 'client to give up');
  assert.ok(!states.includes('connected'), `must never reach connected: ${states}`);
});

chorus.test('max_connections: a connection over the app quota is refused with 4004', async () => {
  const c1 = chorus.pusher({ key: LIMITED.key });
  const c2 = chorus.pusher({ key: LIMITED.key });
  await connected(c1);
  await connected(c2);
  const c3 = chorus.pusher({ key: LIMITED.key });
  const codes = new Recorder('c3 error codes');
  c3.connection.bind('error', (e) => codes.fn(pusherErrorCode(e)));
  await codes.waitFor(1);
  assert.ok(codes.calls.includes(4004), `expected 4004, got ${JSON.stringify(codes.calls)}`);
  c3.disconnect();

  // Freeing a slot lets a new connection in (retry while the server processes the close).
  c1.disconnect();
  await waitUntil(
    async () => {
      const c = chorus.pusher({ key: LIMITED.key });
      const outcome = await new Promise((resolve) => {
        c.connection.bind('connected', () => resolve('connected'));
        c.connection.bind('error', () => resolve('error'));
        setTimeout(() => resolve('timeout'), 3000);
      });
      if (outcome !== 'connected') c.disconnect();
      return outcome === 'connected';
    },
    'a new connection after one was closed',
    { timeout: 8000, interval: 100 },
  );
});

chorus.test('after unsubscribe a client no longer receives channel events', async () => {
  const a = chorus.pusher();
  const b = chorus.pusher();
  const ca = await subscribed(a, 'unsub-test');
  await subscribed(b, 'unsub-test');
  const got = new Recorder('A');
  ca.bind('e', got.fn);
  await chorus.sdk.trigger('unsub-test', 'e', { n: 1 });
  await got.waitFor(1);

  a.unsubscribe('unsub-test');
  assert.equal(await pingBarrier(a), 'pong'); // the server has processed the unsubscribe
  // pusher-js drops the channel object on unsubscribe, so watch the raw connection.
  const raw = new Recorder('A raw');
  a.connection.bind('message', (ev) => ev.channel === 'unsub-test' && raw.fn(ev));
  await chorus.sdk.trigger('unsub-test', 'e', { n: 2 });
  await barrier(chorus.sdk, 'unsub-test', [b]);
  assert.equal(await pingBarrier(a), 'pong'); // anything queued to A before this pong has arrived
  assert.equal(raw.count, 0, `unsubscribed connection still receives: ${JSON.stringify(raw.calls)}`);
});
