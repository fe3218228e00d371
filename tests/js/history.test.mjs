// Chorus's history extension (a `position` field on events and on subscription_succeeded) must not
// change what pusher-js and Echo deliver: the same events, the same payloads, in order.

import assert from 'node:assert/strict';

import { Recorder, barrier, defaultApp, echoSubscribed, useChorus } from './lib/harness.mjs';

const chorus = useChorus({
  apps: [defaultApp({ history_size: 100, history_channels: ['*'] })],
});

chorus.test('with history on, events carry a position that pusher-js and Echo ignore', async () => {
  const echo = chorus.echo();
  const got = new Recorder('listen');
  echo.private('orders.1').listen('OrderShipped', got.fn);
  await echoSubscribed(echo, 'private-orders.1');

  for (let i = 0; i < 20; i += 1) {
    await chorus.sdk.trigger('private-orders.1', 'App\\Events\\OrderShipped', { order: i });
  }
  const received = await got.waitFor(20);
  assert.deepEqual(received, Array.from({ length: 20 }, (_, i) => ({ order: i })));
  await barrier(chorus.sdk, 'private-orders.1', [echo]);
  assert.equal(got.count, 20, 'each event once');

  // History really is on for this channel: the server kept the 20 events with their positions
  // (pusher-js strips unknown fields before its 'message' event, so the wire is checked this way).
  const res = await chorus.sdk.get({ path: '/channels/private-orders.1/history', params: { limit: 50 } });
  assert.equal(res.status, 200);
  const body = await res.json();
  const shipped = body.events.filter((e) => e.event === 'App\\Events\\OrderShipped');
  assert.deepEqual(
    shipped.map((e) => [e.position.offset, JSON.parse(e.data).order]),
    Array.from({ length: 20 }, (_, i) => [i + 1, i]),
  );
});
