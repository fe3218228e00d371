// Subscription counts as pusher-js surfaces them (`pusher:subscription_count` on the channel)
// with `enable_subscription_count = true`: a change is announced, coalesced, to every subscriber,
// counting the whole cluster with two nodes on a real redis-server; the `subscription_count`
// webhook carries the same figure; an app without the setting sends nothing.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { Recorder, clientOf, defaultApp, delay, startServer, subscribed, waitUntil } from './lib/harness.mjs';
import { redisCluster } from './lib/redis.mjs';
import { startReceiver } from './lib/webhooks.mjs';

const receiver = await startReceiver();
after(() => receiver.close());

const client = (node) => clientOf(node);

async function scenario(t, nodes) {
  const clients = [];
  t.after(() => clients.forEach((c) => c.disconnect()));
  const seen = [];
  for (let i = 0; i < 4; i++) {
    const c = client(nodes[i % nodes.length]);
    clients.push(c);
    const rec = new Recorder(`counts of client ${i}`);
    c.subscribe('room').bind('pusher:subscription_count', rec.fn);
    await subscribed(c, 'room');
    seen.push(rec);
  }
  const last = (rec) => rec.last?.subscription_count;
  await waitUntil(() => seen.every((r) => last(r) === 4), 'every subscriber sees 4');
  // pusher-js keeps the figure on the channel too.
  assert.equal(clients[0].channel('room').subscriptionCount, 4);
  // Coalesced: four joins in quick succession are fewer than ten announcements to the first.
  assert.ok(seen[0].count < 10, `${seen[0].count} announcements`);
  clients[3].disconnect();
  await waitUntil(() => seen.slice(0, 3).every((r) => last(r) === 3), 'the others see 3');
  await waitUntil(
    () => receiver.named('subscription_count', 'room').some((e) => e.subscription_count === 3),
    'the webhook says 3',
  );
  // Presence channels count members instead: no subscription_count there.
}

const apps = () => [
  defaultApp({
    enable_subscription_count: true,
    webhooks: [{ url: receiver.url, event_types: ['subscription_count'] }],
  }),
];

test('subscription counts on one node', async (t) => {
  receiver.clear();
  const node = await startServer({ apps: apps() });
  t.after(() => node.stop());
  await scenario(t, [node]);
});

test('subscription counts across two nodes on Redis', async (t) => {
  receiver.clear();
  const settings = { redis_prefix: `jscount${process.pid}`, shutdown_timeout: 2 };
  const { nodes } = await redisCluster(t, 2, { apps: apps(), settings });
  await scenario(t, nodes);
});

test('without enable_subscription_count nothing is sent', async (t) => {
  const node = await startServer();
  t.after(() => node.stop());
  const a = client(node);
  const b = client(node);
  t.after(() => [a, b].forEach((c) => c.disconnect()));
  const rec = new Recorder('counts');
  a.subscribe('room').bind('pusher:subscription_count', rec.fn);
  await subscribed(a, 'room');
  await subscribed(b, 'room');
  await delay(400);
  assert.equal(rec.count, 0);
});
