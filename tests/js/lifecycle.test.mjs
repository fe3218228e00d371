// App lifecycle against the real binary: a disabled app refuses connections (4003) and HTTP API
// requests (403); SIGHUP reloads the config file's apps (added, removed, changed, enabled or
// disabled) without dropping anyone on an app that stayed or only changed limits; a removed or
// disabled app's connections are closed with 4003; a file that does not parse changes nothing.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';

import {
  PusherClient,
  PusherServer,
  Recorder,
  defaultApp,
  delay,
  pusherErrorCode,
  renderConfig,
  startServer,
  subscribed,
  waitUntil,
} from './lib/harness.mjs';

const appA = defaultApp();
const appB = { ...defaultApp(), id: 'b-id', key: 'b-key', secret: 'b-secret', enabled: false };
const appC = { ...defaultApp(), id: 'c-id', key: 'c-key', secret: 'c-secret' };

function client(server, key) {
  const c = new PusherClient(key, {
    wsHost: '127.0.0.1',
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: '',
    disableStats: true,
  });
  const errors = new Recorder(`${key} errors`);
  const states = new Recorder(`${key} states`);
  c.connection.bind('error', (e) => errors.fn(pusherErrorCode(e)));
  c.connection.bind('state_change', ({ current }) => states.fn(current));
  return { c, errors, states };
}

const sdk = (server, app) =>
  new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(server.port), useTLS: false });

async function reload(server, apps) {
  const mark = server.mark();
  await writeFile(server.configPath, renderConfig({ apps, settings: { shutdown_timeout: 2 } }));
  server.signal('SIGHUP');
  await waitUntil(() => /apps reloaded|not reloaded/.test(server.logsSince(mark)), 'the reload logged');
  return server.logsSince(mark);
}

test('disabled apps, and SIGHUP reloading apps without dropping the others', async (t) => {
  const server = await startServer({ apps: [appA, appB], settings: { shutdown_timeout: 2 } });
  const open = [];
  t.after(async () => {
    open.forEach((x) => x.c.disconnect());
    await server.stop();
  });
  const track = (x) => (open.push(x), x);

  // B is disabled: 4003 on the socket, 403 on the API.
  const b = track(client(server, appB.key));
  await b.errors.waitFor(1);
  assert.equal(b.errors.calls[0], 4003);
  await assert.rejects(sdk(server, appB).trigger('x', 'e', {}), (err) => err.status === 403);

  const a = track(client(server, appA.key));
  const aEvents = new Recorder('a events');
  (await subscribed(a.c, 'room')).bind('e', aEvents.fn);

  // Reload: B enabled, C added, A's limits changed. A's connection stays.
  let log = await reload(server, [{ ...appA, max_connections: 50 }, { ...appB, enabled: true }, appC]);
  assert.match(log, /apps reloaded/);
  const c = track(client(server, appC.key));
  await subscribed(c.c, 'room');
  const b2 = track(client(server, appB.key));
  await subscribed(b2.c, 'room');
  await sdk(server, appC).trigger('room', 'e', { to: 'c' });
  await sdk(server, appA).trigger('room', 'e', { to: 'a' });
  await aEvents.waitFor(1);
  assert.deepEqual(aEvents.calls, [{ to: 'a' }], 'apps stay apart');

  // Reload: C removed, B disabled again: both closed with 4003; A untouched.
  log = await reload(server, [{ ...appA, max_connections: 50 }, appB]);
  await c.errors.waitFor(1);
  await b2.errors.waitFor(1);
  assert.equal(c.errors.calls[0], 4003);
  assert.equal(b2.errors.calls[0], 4003);
  await assert.rejects(sdk(server, appC).trigger('room', 'e', {}), (err) => err.status === 404);

  // A file that does not parse keeps the running apps.
  const mark = server.mark();
  await writeFile(server.configPath, '[[apps]\nid = ');
  server.signal('SIGHUP');
  await waitUntil(() => /config not reloaded/.test(server.logsSince(mark)), 'the refusal logged');
  await sdk(server, appA).trigger('room', 'e', { to: 'a', n: 2 });
  await aEvents.waitFor(2);
  await delay(100);
  assert.equal(a.errors.count, 0);
  assert.ok(!a.states.calls.includes('disconnected'), `A's states: ${a.states.calls}`);
  assert.equal(a.c.connection.state, 'connected');
});
