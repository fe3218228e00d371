// Watchlists (Pusher user authentication) as pusher-js uses them: `watchlist` in user_data, and
// `pusher.user.watchlist.bind('online' | 'offline', ...)`: right after sign-in the watched ids
// online now, then each one's first connection coming and last one leaving; cluster-wide with two
// nodes on a real redis-server, including users whose node died.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Recorder,
  clientOf,
  delay,
  sdkUserAuthenticator,
  serverSdk,
  signedIn,
  startServer,
} from './lib/harness.mjs';
import { redisCluster } from './lib/redis.mjs';

function signedInClient(node, sdk, userData, clients) {
  const c = clientOf(node, { userAuthentication: { customHandler: sdkUserAuthenticator(sdk, userData) } });
  clients.push(c);
  const online = new Recorder(`${userData.id} online`);
  const offline = new Recorder(`${userData.id} offline`);
  c.user.watchlist.bind('online', (e) => online.fn(e.user_ids));
  c.user.watchlist.bind('offline', (e) => offline.fn(e.user_ids));
  c.signin();
  return { c, online, offline };
}

const ids = (rec) => rec.calls.flat().sort();

async function scenario(t, [a, b], killB) {
  const sdk = serverSdk(a);
  const clients = [];
  t.after(() => clients.forEach((c) => c.disconnect()));
  // Carol is online before Ann signs in; Bob is not.
  const carol = signedInClient(b, sdk, { id: 'carol' }, clients);
  await signedIn(carol.c);
  const ann = signedInClient(a, sdk, { id: 'ann', watchlist: ['bob', 'carol', 'dave'] }, clients);
  await signedIn(ann.c);
  await ann.online.waitFor(1);
  assert.deepEqual(ids(ann.online), ['carol'], 'online right after sign-in');

  // Bob's first tab: online once; his second tab: nothing new.
  const bob1 = signedInClient(b, sdk, { id: 'bob' }, clients);
  await ann.online.waitFor(2);
  assert.deepEqual(ids(ann.online), ['bob', 'carol']);
  const bob2 = signedInClient(a, sdk, { id: 'bob' }, clients);
  await signedIn(bob2.c);
  await delay(300);
  assert.equal(ann.online.count, 2);

  // Bob's first tab leaves: still online; the second leaves: offline.
  bob1.c.disconnect();
  await delay(300);
  assert.equal(ann.offline.count, 0);
  bob2.c.disconnect();
  await ann.offline.waitFor(1);
  assert.deepEqual(ids(ann.offline), ['bob']);

  if (killB) {
    // Carol's node dies: after node_timeout Ann hears she is offline.
    await killB();
    await ann.offline.waitFor(2, 15000);
    assert.deepEqual(ids(ann.offline), ['bob', 'carol']);
  } else {
    carol.c.disconnect();
    await ann.offline.waitFor(2);
  }
  // Someone not watching hears nothing.
  assert.equal(carol.online.count, 0);
}

test('watchlists on one node', async (t) => {
  const node = await startServer();
  t.after(() => node.stop());
  await scenario(t, [node, node]);
});

test('watchlists across two nodes on Redis, a dead node\'s users too', async (t) => {
  const settings = { redis_prefix: `jswatch${process.pid}`, node_timeout: 2, shutdown_timeout: 2 };
  const { nodes } = await redisCluster(t, 2, { settings });
  await scenario(t, nodes, async () => nodes[1].signal('SIGKILL'));
});
