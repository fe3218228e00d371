// Cache channels as pusher-js uses them: a new subscriber gets the channel's last event right
// after subscription_succeeded, or `pusher:cache_miss` (and the backend a `cache_miss` webhook)
// when there is none; for every kind of cache channel, on one node and across two nodes on a
// real redis-server (the last event lives in Redis).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  Recorder,
  clientOf,
  defaultApp,
  delay,
  sdkChannelAuthorizer,
  serverSdk,
  startServer,
  subscribed,
  waitUntil,
} from './lib/harness.mjs';
import { redisCluster } from './lib/redis.mjs';
import { startReceiver } from './lib/webhooks.mjs';

const receiver = await startReceiver();
after(() => receiver.close());

function client(node, sdk) {
  return clientOf(node, {
    channelAuthorization: {
      customHandler: sdkChannelAuthorizer(sdk, { user_id: 'u1', user_info: {} }),
    },
  });
}

/** Subscribes with recorders bound before the subscription, so nothing sent right after
 * subscription_succeeded is missed. */
async function watch(c, name) {
  const events = new Recorder(`${name} events`);
  const misses = new Recorder(`${name} cache_miss`);
  const ch = c.subscribe(name);
  ch.bind('news', events.fn);
  ch.bind('pusher:cache_miss', misses.fn);
  await subscribed(c, name);
  return { events, misses };
}

async function scenario(t, [a, b]) {
  const sdkA = serverSdk(a);
  const clients = [];
  t.after(() => clients.forEach((c) => c.disconnect()));
  const on = (node) => {
    const c = client(node, sdkA);
    clients.push(c);
    return c;
  };
  for (const name of ['cache-a', 'private-cache-a', 'presence-cache-a']) {
    const first = await watch(on(a), name);
    await first.misses.waitFor(1);
    assert.equal(first.events.count, 0);
    await waitUntil(() => receiver.named('cache_miss', name).length === 1, `cache_miss webhook for ${name}`);

    await sdkA.trigger(name, 'news', { n: 1 });
    await sdkA.trigger(name, 'news', { n: 2 });
    await first.events.waitFor(2);
    // A later subscriber (on the other node, if there is one) gets the last event only, and no miss.
    const later = await watch(on(b), name);
    const [got] = await later.events.waitFor(1);
    assert.deepEqual(got, { n: 2 });
    await delay(200);
    assert.equal(later.events.count, 1);
    assert.equal(later.misses.count, 0);
    assert.equal(receiver.named('cache_miss', name).length, 1);
    // Live events after it arrive as usual.
    await sdkA.trigger(name, 'news', { n: 3 });
    assert.deepEqual((await later.events.waitFor(2))[1], { n: 3 });
  }
  // A channel that is not a cache channel sends neither.
  const plain = await watch(on(b), 'not-cache-a');
  await sdkA.trigger('not-cache-a', 'news', { n: 1 });
  await plain.events.waitFor(1);
  const again = await watch(on(a), 'not-cache-a');
  await delay(200);
  assert.equal(again.events.count + again.misses.count + plain.misses.count, 0);
}

const hooks = () => [{ url: receiver.url, event_types: ['cache_miss'] }];

test('cache channels on one node', async (t) => {
  receiver.clear();
  const node = await startServer({ apps: [defaultApp({ webhooks: hooks() })] });
  t.after(() => node.stop());
  await scenario(t, [node, node]);
});

test('cache channels across two nodes on Redis', async (t) => {
  receiver.clear();
  const settings = { redis_prefix: `jscache${process.pid}`, shutdown_timeout: 2 };
  const { nodes } = await redisCluster(t, 2, { apps: [defaultApp({ webhooks: hooks() })], settings });
  await scenario(t, nodes);
});
