// Webhooks as a backend receives them: every request is checked with the official `pusher` SDK's
// webhook() (key and HMAC signature), and the events are Pusher's (channel_occupied,
// channel_vacated, member_added, member_removed, client_event), batched, filtered by
// channel_prefix, retried when the backend fails. Then two nodes on a real redis-server: each
// transition is announced once for the cluster, including a member and a channel that only a
// node killed with SIGKILL had.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  clientOf,
  connected,
  defaultApp,
  delay,
  sdkChannelAuthorizer,
  serverSdk,
  startServer,
  subscribed,
  useChorus,
  waitUntil,
} from './lib/harness.mjs';
import { redisCluster } from './lib/redis.mjs';
import { startReceiver } from './lib/webhooks.mjs';

const ALL = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'];

const all = await startReceiver();
// Fails its first two requests: the server must retry.
const flaky = await startReceiver({ fail: (n) => n <= 2 });
const presenceOnly = await startReceiver();

const ctx = useChorus({
  apps: [
    defaultApp({
      webhooks: [
        { url: all.url, event_types: ALL },
        { url: flaky.url, event_types: ['channel_occupied'] },
        { url: presenceOnly.url, event_types: ALL, channel_prefix: 'presence-' },
      ],
    }),
  ],
});

after(async () => {
  await Promise.all([all.close(), flaky.close(), presenceOnly.close()]);
});

const user = (id) => ({ user_id: id, user_info: { name: `user ${id}` } });

ctx.test('occupied, members, client events and vacated reach the backend, signed', async () => {
  const alice = ctx.pusher({ user: user('alice') });
  const bob = ctx.pusher({ user: user('bob') });
  await subscribed(alice, 'presence-room');
  await all.waitFor((e) => e.some((x) => x.name === 'member_added' && x.user_id === 'alice'), 'alice added');
  const bobRoom = await subscribed(bob, 'presence-room');
  await all.waitFor((e) => e.some((x) => x.name === 'member_added' && x.user_id === 'bob'), 'bob added');
  // A second connection of the same user is no new member.
  const alice2 = ctx.pusher({ user: user('alice') });
  await subscribed(alice2, 'presence-room');
  bobRoom.trigger('client-typing', { typing: true });
  await all.waitFor((e) => e.some((x) => x.name === 'client_event'), 'client_event');
  const client = all.named('client_event')[0];
  assert.equal(client.channel, 'presence-room');
  assert.equal(client.event, 'client-typing');
  assert.deepEqual(JSON.parse(client.data), { typing: true });
  assert.equal(client.socket_id, bob.connection.socket_id);
  assert.equal(client.user_id, 'bob');

  bob.disconnect();
  await all.waitFor((e) => e.some((x) => x.name === 'member_removed' && x.user_id === 'bob'), 'bob removed');
  alice.disconnect();
  await delay(300);
  assert.equal(all.named('member_removed').length, 1, 'alice still has a connection');
  alice2.disconnect();
  await all.waitFor((e) => e.some((x) => x.name === 'channel_vacated'), 'channel_vacated');
  const names = all.events.map((e) => `${e.name}${e.user_id ? `:${e.user_id}` : ''}`);
  assert.deepEqual(names, [
    'channel_occupied',
    'member_added:alice',
    'member_added:bob',
    'client_event:bob',
    'member_removed:bob',
    'member_removed:alice',
    'channel_vacated',
  ]);
  assert.ok(all.events.every((e) => e.channel === 'presence-room'));
  assert.deepEqual(all.invalid, []);
  for (const batch of all.batches) assert.equal(typeof batch.time_ms, 'number');
});

ctx.test('channel_prefix filters, the backend failing is retried, events are batched', async () => {
  const clients = [0, 1, 2, 3].map(() => ctx.pusher());
  await Promise.all(clients.map((c, i) => subscribed(c, `public-${i}`)));
  // The flaky target failed twice, then took everything: nothing lost, nothing twice.
  await flaky.waitFor(
    (e) => [0, 1, 2, 3].every((i) => e.some((x) => x.channel === `public-${i}`)),
    'every occupied channel through the retries',
    15000,
  );
  assert.ok(flaky.requests >= 3, `flaky saw ${flaky.requests} requests`);
  assert.equal(flaky.events.filter((e) => e.channel.startsWith('public-')).length, 4);
  assert.ok(flaky.events.every((e) => e.name === 'channel_occupied'));
  // Subscribed at once, the four arrive in fewer requests than events.
  await all.waitFor((e) => e.filter((x) => x.channel?.startsWith('public-')).length === 4, 'all four');
  const publicBatches = all.batches.filter((b) => b.events.some((e) => e.channel.startsWith('public-')));
  assert.ok(publicBatches.length < 4, `${publicBatches.length} requests for 4 events`);
  // The presence-only target saw none of the public channels.
  assert.ok(presenceOnly.events.length > 0);
  assert.ok(presenceOnly.events.every((e) => e.channel.startsWith('presence-')));
});

ctx.test('a signature made with another secret does not validate', async () => {
  // The receiver's check is real: the same request body signed with a wrong secret fails it.
  const other = await startReceiver({ secret: 'not-the-secret' });
  try {
    const server = await startServer({ apps: [defaultApp({ webhooks: [{ url: other.url, event_types: ALL }] })] });
    try {
      const c = clientOf(server);
      await subscribed(c, 'public-x');
      await waitUntil(() => other.invalid.length > 0, 'a request that does not validate');
      assert.equal(other.events.length, 0);
      c.disconnect();
    } finally {
      await server.stop();
    }
  } finally {
    await other.close();
  }
});

test('two nodes on Redis: each transition once for the cluster, a dead node\'s too', async (t) => {
  const rx = await startReceiver();
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await rx.close();
  });
  const settings = { redis_prefix: `jshooks${process.pid}`, node_timeout: 2, shutdown_timeout: 2 };
  const apps = [defaultApp({ webhooks: [{ url: rx.url, event_types: ALL }] })];
  const { nodes } = await redisCluster(t, 2, { apps, settings });
  const [a, b] = nodes;
  const sdk = serverSdk(a);
  const on = (node, member) => {
    const c = clientOf(node, { channelAuthorization: { customHandler: sdkChannelAuthorizer(sdk, member) } });
    clients.push(c);
    return c;
  };
  // The same user on both nodes, a second user on B only; a channel only B has.
  const annA = on(a, user('ann'));
  const annB = on(b, user('ann'));
  const benB = on(b, user('ben'));
  await subscribed(annA, 'presence-team');
  await subscribed(annB, 'presence-team');
  await subscribed(benB, 'presence-team');
  await subscribed(benB, 'public-only-b');
  await connected(annA);
  await rx.waitFor(
    (e) => e.filter((x) => x.name === 'member_added').length === 2 && e.some((x) => x.channel === 'public-only-b'),
    'members and occupancy',
  );
  await delay(500);
  assert.equal(rx.named('channel_occupied', 'presence-team').length, 1);
  assert.deepEqual(rx.named('member_added').map((e) => e.user_id).sort(), ['ann', 'ben']);

  // Node B dies without a goodbye: after node_timeout, ben is removed and public-only-b is
  // vacated, once, by whichever node reaps B; ann is still on A.
  b.signal('SIGKILL');
  await rx.waitFor(
    (e) => e.some((x) => x.name === 'member_removed' && x.user_id === 'ben') && e.some((x) => x.name === 'channel_vacated'),
    'the dead node\'s member and channel',
    15000,
  );
  await delay(1500);
  assert.deepEqual(rx.named('member_removed').map((e) => e.user_id), ['ben']);
  assert.deepEqual(rx.named('channel_vacated').map((e) => e.channel), ['public-only-b']);

  // The last connection in the cluster leaving: ann removed and the channel vacated, once.
  annA.disconnect();
  await rx.waitFor((e) => e.some((x) => x.name === 'channel_vacated' && x.channel === 'presence-team'), 'team vacated');
  await delay(500);
  assert.deepEqual(rx.named('member_removed').map((e) => e.user_id), ['ben', 'ann']);
  assert.equal(rx.named('channel_vacated', 'presence-team').length, 1);
  assert.equal(rx.named('channel_occupied', 'presence-team').length, 1);
  assert.deepEqual(rx.invalid, []);
});
