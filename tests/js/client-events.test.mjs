// Client events (Echo whisper / listenForWhisper): private and presence only,
// never echoed to the sender, `user_id` added on presence channels, app switch
// and per-connection rate limit.

import assert from 'node:assert/strict';

import {
  Recorder,
  barrier,
  connected,
  defaultApp,
  echoSubscribed,
  serverSdk,
  subscribed,
  pingBarrier,
  useChorus,
} from './lib/harness.mjs';

const APP2 = { id: 'app2-id', key: 'app2-key', secret: 'app2-secret' };
const chorus = useChorus({
  apps: [defaultApp(), defaultApp({ ...APP2, enable_client_events: false })],
});

const alice = { user_id: '1', user_info: { id: 1, name: 'Alice' } };
const bob = { user_id: '2', user_info: { id: 2, name: 'Bob' } };

chorus.test('whisper on a private channel reaches the other client, not the sender', async () => {
  const a = chorus.echo();
  const b = chorus.echo();
  const aGot = new Recorder('A whisper');
  const bGot = new Recorder('B whisper');
  const ca = a.private('doc.1').listenForWhisper('typing', aGot.fn);
  b.private('doc.1').listenForWhisper('typing', bGot.fn);
  await echoSubscribed(a, 'private-doc.1');
  await echoSubscribed(b, 'private-doc.1');

  ca.whisper('typing', { name: 'A', typing: true });
  const [data] = await bGot.waitFor(1);
  assert.deepEqual(data, { name: 'A', typing: true });
  assert.equal(await pingBarrier(a.connector.pusher), 'pong');
  await barrier(chorus.sdk, 'private-doc.1', [a, b]);
  assert.equal(aGot.count, 0, 'the sender must not receive its own client event');

  // The raw event as pusher-js decoded it: name client-typing, same channel.
  const raw = new Recorder('B raw');
  b.connector.pusher.connection.bind('message', (ev) => ev.event === 'client-typing' && raw.fn(ev));
  ca.whisper('typing', { name: 'A', typing: false });
  const [ev] = await raw.waitFor(1);
  assert.equal(ev.channel, 'private-doc.1');
  assert.deepEqual(ev.data, { name: 'A', typing: false });
  assert.equal(ev.user_id, undefined, 'no user_id on private-channel client events');
});

chorus.test('whisper on a presence channel carries the sender user_id (pusher-js metadata)', async () => {
  const a = chorus.echo({ user: alice });
  const b = chorus.echo({ user: bob });
  const aHere = new Recorder('A here');
  const bHere = new Recorder('B here');
  const bWhisper = new Recorder('B listenForWhisper');
  const aWhisper = new Recorder('A listenForWhisper');
  const pa = a.join('room.w').here(aHere.fn).listenForWhisper('typing', aWhisper.fn);
  b.join('room.w').here(bHere.fn).listenForWhisper('typing', bWhisper.fn);
  await aHere.waitFor(1);
  await bHere.waitFor(1);

  const metaRec = new Recorder('B bind client-typing');
  b.connector.pusher.channel('presence-room.w').bind('client-typing', metaRec.fn);

  pa.whisper('typing', { typing: true });
  await metaRec.waitFor(1);
  const [data, metadata] = metaRec.args[0];
  assert.deepEqual(data, { typing: true });
  assert.deepEqual(metadata, { user_id: '1' }, 'presence client events carry the sender user_id');
  assert.deepEqual((await bWhisper.waitFor(1))[0], { typing: true });

  assert.equal(await pingBarrier(a.connector.pusher), 'pong');
  await barrier(chorus.sdk, 'presence-room.w', [a, b]);
  assert.equal(aWhisper.count, 0, 'the sender must not receive its own client event');
});

chorus.test('client events on a public channel are not delivered', async () => {
  const a = chorus.pusher();
  const b = chorus.pusher();
  const ca = await subscribed(a, 'public-ce');
  const cb = await subscribed(b, 'public-ce');
  const got = new Recorder('B client-hi');
  cb.bind('client-hi', got.fn);
  ca.trigger('client-hi', { nope: true });
  const outcome = await pingBarrier(a);
  await barrier(chorus.sdk, 'public-ce', [b]);
  assert.equal(got.count, 0, `client event on a public channel was delivered (sender connection: ${outcome})`);
});

chorus.test('client events from a non-subscribed connection are not delivered', async () => {
  const a = chorus.pusher();
  const b = chorus.pusher();
  await connected(a);
  const cb = await subscribed(b, 'private-notmine');
  const got = new Recorder('B client-hi');
  cb.bind('client-hi', got.fn);
  // A never subscribed to private-notmine: send the raw protocol message.
  a.send_event('client-hi', { sneaky: true }, 'private-notmine');
  await pingBarrier(a);
  await barrier(chorus.sdk, 'private-notmine', [b]);
  assert.equal(got.count, 0, 'client event from a non-member was delivered');
});

chorus.test('client events are not delivered when the app disables them', async () => {
  const sdk2 = serverSdk(chorus.server, { appId: APP2.id, key: APP2.key, secret: APP2.secret });
  const a = chorus.pusher({ key: APP2.key, sdk: sdk2 });
  const b = chorus.pusher({ key: APP2.key, sdk: sdk2 });
  const ca = await subscribed(a, 'private-noclient');
  const cb = await subscribed(b, 'private-noclient');
  const got = new Recorder('B client-hi');
  cb.bind('client-hi', got.fn);
  const errs = new Recorder('A pusher:error');
  a.bind('pusher:error', errs.fn);
  ca.trigger('client-hi', { x: 1 });
  const outcome = await pingBarrier(a);
  await barrier(sdk2, 'private-noclient', [b]);
  assert.equal(got.count, 0, 'client event delivered although enable_client_events = false');
  assert.ok(errs.count > 0 || outcome === 'closed', 'the sender should be told (pusher:error) that client events are disabled');
});

chorus.test('client events over max_client_events_per_second (10) are not all delivered', async (t) => {
  const a = chorus.pusher();
  const b = chorus.pusher();
  const ca = await subscribed(a, 'private-flood');
  const cb = await subscribed(b, 'private-flood');
  const got = new Recorder('B client-flood');
  cb.bind('client-flood', got.fn);
  const errors = new Recorder('A errors');
  a.connection.bind('error', errors.fn);
  for (let i = 0; i < 30; i++) ca.trigger('client-flood', { i });
  const outcome = await pingBarrier(a);
  await barrier(chorus.sdk, 'private-flood', [b]);
  t.diagnostic(`delivered ${got.count}/30; sender connection ${outcome}; sender errors ${JSON.stringify(errors.calls)}`);
  assert.ok(got.count >= 1, 'the first events within the limit are delivered');
  assert.ok(got.count <= 20, `rate limit of 10/s not enforced: ${got.count} of 30 burst events delivered`);
  const seq = got.calls.map((d) => d.i);
  assert.deepEqual(seq, [...seq].sort((x, y) => x - y), 'delivered client events keep their order');
});
