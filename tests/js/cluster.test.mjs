// Two chorus nodes on one real redis-server (the Redis adapter) behave as one server for the
// real pusher-js, laravel-echo and pusher (Node server SDK) packages: an event triggered through
// node A's HTTP API reaches clients on both nodes once and in order, socket_id exclusion works
// whichever node the excluded socket is on, Echo presence is one membership across the nodes,
// and channel queries through either node count the whole cluster.
//
// Needs `redis-server` (Debian: apt-get install redis-server; REDIS_SERVER overrides the path).
// Everything listens on 127.0.0.1 (free ports); after() stops both nodes and Redis.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';

import {
  APP,
  Echo,
  HOST,
  PusherClient,
  Recorder,
  barrier,
  connected,
  delay,
  json,
  sdkChannelAuthorizer,
  serverSdk,
  startServer,
  subscribed,
  waitUntil,
} from './lib/harness.mjs';
import { startRedis, startRedisCluster, startSentinel } from './lib/redis.mjs';

const cluster = { dir: null, redis: null, a: null, b: null, sdkA: null, sdkB: null };
let closers = [];

// CHORUS_CLUSTER_MODE=sentinel (cluster-sentinel.test.mjs): the same tests with the nodes finding
// the primary through a Sentinel; =rediscluster (cluster-rediscluster.test.mjs): on a Redis
// Cluster of three primaries.
const MODE = process.env.CHORUS_CLUSTER_MODE;
const start = { sentinel: startSentinel, rediscluster: startRedisCluster }[MODE] ?? startRedis;

before(async () => {
  cluster.dir = await mkdtemp(path.join(os.tmpdir(), 'chorus-js-cluster-'));
  cluster.redis = await start(cluster.dir);
  const settings = {
    adapter: 'redis',
    ...(cluster.redis.settings ?? { redis_url: cluster.redis.url }),
    // A prefix of its own: nothing else that might share a Redis is seen.
    redis_prefix: `jscluster${process.pid}`,
    node_timeout: 5,
    shutdown_timeout: 2,
  };
  cluster.a = await startServer({ settings });
  cluster.b = await startServer({ settings });
  for (const node of [cluster.a, cluster.b]) {
    await waitUntil(
      async () => (await fetch(`${node.httpUrl}/up`).then((r) => r.json())).status === 'ok',
      `node on ${node.port} connected to Redis (/up status ok)`,
      { timeout: 10000 },
    );
  }
  cluster.sdkA = serverSdk(cluster.a);
  cluster.sdkB = serverSdk(cluster.b);
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) {
    try {
      await close();
    } catch {
      /* best effort */
    }
  }
});

// Runs even when before() failed half-way: whatever was started is stopped.
after(async () => {
  for (const node of [cluster.a, cluster.b]) {
    if (node) await node.stop().catch(() => {});
  }
  if (cluster.redis) await cluster.redis.stop();
  if (cluster.dir) await rm(cluster.dir, { recursive: true, force: true });
});

/** node:test `test` that prints both nodes' output of the test when it fails. */
function clusterTest(name, fn) {
  return test(name, { timeout: 60000 }, async (t) => {
    if (!cluster.a || !cluster.b) throw new Error('the cluster is not running (see the before hook error)');
    const marks = [cluster.a.mark(), cluster.b.mark()];
    try {
      await fn(t);
    } catch (err) {
      [cluster.a, cluster.b].forEach((node, i) => {
        process.stderr.write(
          `\n----- node ${'AB'[i]} (port ${node.port}) output during failing test "${name}" -----\n` +
            `${node.logsSince(marks[i])}\n` +
            (node.exited ? `!!! node exited: ${JSON.stringify(node.exited)}\n` : ''),
        );
      });
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------
// Clients on a given node
// ---------------------------------------------------------------------------

function connectionOptions(node, user) {
  return {
    wsHost: HOST,
    wsPort: node.port,
    wssPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: '',
    disableStats: true,
    // Signed with the server SDK, as a Laravel /broadcasting/auth route would.
    channelAuthorization: { customHandler: sdkChannelAuthorizer(cluster.sdkA, user) },
  };
}

/** A pusher-js client connected to `node`. */
function pusherOn(node, user) {
  const client = new PusherClient(APP.key, connectionOptions(node, user));
  closers.push(() => client.disconnect());
  return client;
}

/** A Laravel Echo instance (pusher-js underneath) connected to `node` as presence member `user`. */
function echoOn(node, user) {
  const echo = new Echo({
    broadcaster: 'reverb',
    key: APP.key,
    Pusher: PusherClient,
    auth: { headers: {} },
    withoutInterceptors: true,
    ...connectionOptions(node, user),
  });
  closers.push(() => echo.disconnect());
  return echo;
}

/** Collects the data of one event on a pusher-js channel. */
function record(channel, event, name) {
  const rec = new Recorder(name);
  channel.bind(event, rec.fn);
  return rec;
}

const member = (id, name) => ({ user_id: String(id), user_info: { id, name } });
const alice = member(1, 'Alice');
const bob = member(2, 'Bob');
const carol = member(3, 'Carol');
const byId = (x, y) => x.id - y.id;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

clusterTest('100 events triggered through node A reach clients on both nodes once, in order', async () => {
  const channel = 'private-cluster.orders';
  const onA = pusherOn(cluster.a);
  const onB = pusherOn(cluster.b);
  const recA = record(await subscribed(onA, channel), 'order', 'client on A');
  const recB = record(await subscribed(onB, channel), 'order', 'client on B');
  const expected = Array.from({ length: 100 }, (_, i) => i);

  for (const n of expected) await cluster.sdkA.trigger(channel, 'order', { n });
  await recB.waitFor(100, 10000);
  await recA.waitFor(100, 10000);
  // Anything still on its way (a duplicate) arrives before the barrier.
  await barrier(cluster.sdkA, channel, [onA, onB]);
  assert.deepEqual(recB.calls.map((d) => d.n), expected, 'the other node delivers each event once, in order');
  assert.deepEqual(recA.calls.map((d) => d.n), expected, 'the triggering node delivers each event once, in order');

  // Alternating nodes: an answered trigger cannot be overtaken by the next one through the other node.
  const alternating = Array.from({ length: 20 }, (_, i) => 100 + i);
  for (const n of alternating) await (n % 2 ? cluster.sdkB : cluster.sdkA).trigger(channel, 'order', { n });
  await barrier(cluster.sdkB, channel, [onA, onB]);
  for (const [who, rec] of [['A', recA], ['B', recB]]) {
    assert.deepEqual(rec.calls.map((d) => d.n), [...expected, ...alternating], `client on ${who}: triggers through both nodes in order`);
  }
});

clusterTest('socket_id exclusion (toOthers) works whichever node the excluded socket is on', async () => {
  const channel = 'private-cluster.chat';
  const senderB = pusherOn(cluster.b); // the "sender" whose socket_id the backend excludes, on B
  const otherB = pusherOn(cluster.b);
  const senderA = pusherOn(cluster.a);
  const otherA = pusherOn(cluster.a);
  const clients = { senderB, otherB, senderA, otherA };
  const recs = {};
  for (const [name, client] of Object.entries(clients)) {
    recs[name] = record(await subscribed(client, channel), 'message', name);
  }

  // Through node A, excluding a socket on node B.
  await cluster.sdkA.trigger(channel, 'message', { text: 'one' }, { socket_id: await connected(senderB) });
  // Through node B, excluding a socket on node A.
  await cluster.sdkB.trigger(channel, 'message', { text: 'two' }, { socket_id: await connected(senderA) });
  await barrier(cluster.sdkA, channel, Object.values(clients));
  const texts = (name) => recs[name].calls.map((d) => d.text);
  assert.deepEqual(texts('otherA'), ['one', 'two']);
  assert.deepEqual(texts('otherB'), ['one', 'two']);
  assert.deepEqual(texts('senderA'), ['one'], 'the socket on A excluded by a trigger through B');
  assert.deepEqual(texts('senderB'), ['two'], 'the socket on B excluded by a trigger through A');
});

clusterTest('Echo presence across nodes: here() lists both nodes, a user with tabs on both is one member', async () => {
  const channel = 'presence-cluster.room';
  const watchers = {};
  const join = (echo, who) => {
    const w = {
      here: new Recorder(`${who} here`),
      joining: new Recorder(`${who} joining`),
      leaving: new Recorder(`${who} leaving`),
    };
    echo.join('cluster.room').here(w.here.fn).joining(w.joining.fn).leaving(w.leaving.fn);
    watchers[who] = w;
    return w;
  };

  // Alice on A, Carol on B: each sees the other, whatever node it is on.
  const aliceEcho = echoOn(cluster.a, alice);
  const aliceW = join(aliceEcho, 'Alice');
  assert.deepEqual((await aliceW.here.waitFor(1))[0], [alice.user_info]);
  const carolEcho = echoOn(cluster.b, carol);
  const carolW = join(carolEcho, 'Carol');
  const [carolHere] = await carolW.here.waitFor(1);
  assert.deepEqual([...carolHere].sort(byId), [alice.user_info, carol.user_info], 'here() on B lists the member on A');
  assert.deepEqual(await aliceW.joining.waitFor(1), [carol.user_info], 'member_added crosses from B to A');

  // Bob's first tab on B, second tab on A.
  const bobTabB = echoOn(cluster.b, bob);
  const bobBW = join(bobTabB, 'Bob on B');
  const [hereB] = await bobBW.here.waitFor(1);
  assert.deepEqual([...hereB].sort(byId), [alice.user_info, bob.user_info, carol.user_info]);
  await aliceW.joining.waitFor(2);
  await carolW.joining.waitFor(1);
  const bobTabA = echoOn(cluster.a, bob);
  const bobAW = join(bobTabA, 'Bob on A');
  const [hereA] = await bobAW.here.waitFor(1);
  assert.deepEqual([...hereA].sort(byId), [alice.user_info, bob.user_info, carol.user_info], 'each user listed once');
  assert.equal(bobTabA.connector.pusher.channel(channel).members.count, 3, 'members count users, not connections');
  await barrier(cluster.sdkA, channel, [aliceEcho, carolEcho, bobTabB, bobTabA]);
  assert.deepEqual(aliceW.joining.calls, [carol.user_info, bob.user_info], 'Alice: Bob joined once (two tabs)');
  assert.deepEqual(carolW.joining.calls, [bob.user_info], 'Carol: Bob joined once (two tabs)');

  const users = await json(cluster.sdkB.get({ path: `/channels/${channel}/users` }));
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2', '3']);

  // Bob closes his tab on A: he is still online through B, nobody sees him leave.
  bobTabA.disconnect();
  await waitUntil(async () => {
    const info = await json(cluster.sdkB.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } }));
    return info.subscription_count === 3;
  }, 'the closed tab to be dropped (cluster-wide subscription_count 3)');
  await barrier(cluster.sdkB, channel, [aliceEcho, carolEcho, bobTabB]);
  assert.equal(aliceW.leaving.count + carolW.leaving.count, 0, 'no member_removed while Bob has a tab on B');

  // His last tab (on B) leaves: member_removed once, on both nodes.
  bobTabB.leave('cluster.room');
  assert.deepEqual(await aliceW.leaving.waitFor(1), [bob.user_info], 'member_removed crosses from B to A');
  assert.deepEqual(await carolW.leaving.waitFor(1), [bob.user_info]);
  await barrier(cluster.sdkA, channel, [aliceEcho, carolEcho]);
  assert.equal(aliceW.leaving.count, 1);
  assert.equal(carolW.leaving.count, 1);
  assert.equal(aliceEcho.connector.pusher.channel(channel).members.count, 2);
  const usersEnd = await json(cluster.sdkA.get({ path: `/channels/${channel}/users` }));
  assert.deepEqual(usersEnd.users.map((u) => u.id).sort(), ['1', '3']);

  // Carol's connection (on B) drops without unsubscribing: Alice on A sees her leave.
  carolEcho.disconnect();
  assert.deepEqual(await aliceW.leaving.waitFor(2), [bob.user_info, carol.user_info]);
});

clusterTest('channel queries through the SDK on either node answer for the whole cluster', async () => {
  const presence = 'presence-q.lobby';
  const a1 = pusherOn(cluster.a, alice);
  const a2 = pusherOn(cluster.a, bob);
  const b1 = pusherOn(cluster.b, bob); // Bob's second connection, on the other node
  const b2 = pusherOn(cluster.b, carol);
  await subscribed(a1, 'q-news');
  await subscribed(a2, 'q-news');
  await subscribed(b1, 'q-news');
  await subscribed(b2, 'q-only-on-b');
  for (const c of [a1, a2, b1, b2]) await subscribed(c, presence);

  for (const [who, sdk] of [['A', cluster.sdkA], ['B', cluster.sdkB]]) {
    const msg = `query through node ${who}`;
    const news = await json(sdk.get({ path: '/channels/q-news', params: { info: 'subscription_count' } }));
    assert.deepEqual(news, { occupied: true, subscription_count: 3 }, msg);
    const onlyB = await json(sdk.get({ path: '/channels/q-only-on-b', params: { info: 'subscription_count' } }));
    assert.deepEqual(onlyB, { occupied: true, subscription_count: 1 }, msg);
    const lobby = await json(
      sdk.get({ path: `/channels/${presence}`, params: { info: 'user_count,subscription_count' } }),
    );
    assert.deepEqual(lobby, { occupied: true, user_count: 3, subscription_count: 4 }, msg);
    const users = await json(sdk.get({ path: `/channels/${presence}/users` }));
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2', '3'], msg);
    const list = await json(sdk.get({ path: '/channels', params: { filter_by_prefix: 'q-' } }));
    assert.deepEqual(Object.keys(list.channels).sort(), ['q-news', 'q-only-on-b'], msg);
    const presenceList = await json(
      sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-q.', info: 'user_count' } }),
    );
    assert.deepEqual(presenceList, { channels: { [presence]: { user_count: 3 } } }, msg);
  }

  // The clients on B go away: node A's answers follow.
  b1.disconnect();
  b2.disconnect();
  await waitUntil(async () => {
    const list = await json(cluster.sdkA.get({ path: '/channels', params: { filter_by_prefix: 'q-' } }));
    return Object.keys(list.channels).join() === 'q-news';
  }, "node A to drop B's channel q-only-on-b");
  const news = await json(cluster.sdkA.get({ path: '/channels/q-news', params: { info: 'subscription_count' } }));
  assert.deepEqual(news, { occupied: true, subscription_count: 2 });
  const lobby = await json(
    cluster.sdkA.get({ path: `/channels/${presence}`, params: { info: 'user_count,subscription_count' } }),
  );
  assert.deepEqual(lobby, { occupied: true, user_count: 2, subscription_count: 2 });
  const users = await json(cluster.sdkA.get({ path: `/channels/${presence}/users` }));
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2'], 'Bob still there through node A');
});
