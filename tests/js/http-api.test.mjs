// The HTTP (REST) API through the official `pusher` Node SDK: triggerBatch,
// channel queries, trigger `info`, signature / app / size errors.

import assert from 'node:assert/strict';

import {
  APP,
  Recorder,
  barrier,
  expectRequestError,
  json,
  serverSdk,
  subscribed,
  useChorus,
  waitUntil,
} from './lib/harness.mjs';

const chorus = useChorus();

const member = (id) => ({ user_id: id, user_info: { name: `user ${id}` } });

chorus.test('triggerBatch delivers every event of the batch to its channel', async () => {
  const a = chorus.pusher();
  const b = chorus.pusher();
  const ca = await subscribed(a, 'batch-a');
  const cb = await subscribed(b, 'batch-b');
  const gotA = new Recorder('batch-a');
  const gotB = new Recorder('batch-b');
  ca.bind('e1', (d) => gotA.fn(['e1', d]));
  ca.bind('e2', (d) => gotA.fn(['e2', d]));
  cb.bind('e3', (d) => gotB.fn(['e3', d]));

  const res = await chorus.sdk.triggerBatch([
    { channel: 'batch-a', name: 'e1', data: { n: 1 } },
    { channel: 'batch-b', name: 'e3', data: 'plain string' },
    { channel: 'batch-a', name: 'e2', data: { n: 2 } },
    { channel: 'batch-nobody', name: 'e1', data: {} },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await gotA.waitFor(2), [
    ['e1', { n: 1 }],
    ['e2', { n: 2 }],
  ]);
  assert.deepEqual(await gotB.waitFor(1), [['e3', 'plain string']]);
});

chorus.test('triggerBatch with more than 10 events is rejected with 400 and delivers nothing', async () => {
  const a = chorus.pusher();
  const ca = await subscribed(a, 'batch-big');
  const got = new Recorder('batch-big');
  ca.bind('big', got.fn);
  const batch = Array.from({ length: 11 }, (_, i) => ({ channel: 'batch-big', name: 'big', data: { i } }));
  const err = await expectRequestError(chorus.sdk.triggerBatch(batch));
  assert.equal(err.status, 400, `expected 400, got ${err.status}: ${err.body}`);
  await barrier(chorus.sdk, 'batch-big', [a]);
  assert.equal(got.count, 0, 'a rejected batch must not be partially delivered');

  const ok = await chorus.sdk.triggerBatch(batch.slice(0, 10));
  assert.equal(ok.status, 200, 'exactly 10 events is allowed');
  await got.waitFor(10);
});

chorus.test('GET /channels, /channels/<name> and /channels/<presence>/users report occupancy', async () => {
  // 2 distinct presence users on 3 connections, 2 public channels, 1 private channel.
  const u1a = chorus.pusher({ user: member('1') });
  const u1b = chorus.pusher({ user: member('1') });
  const u2 = chorus.pusher({ user: member('2') });
  for (const c of [u1a, u1b, u2]) await subscribed(c, 'presence-q8-room');
  await subscribed(u1a, 'q8-alpha');
  await subscribed(u1b, 'q8-alpha');
  await subscribed(u2, 'q8-beta');
  await subscribed(u2, 'private-q8-gamma');
  await subscribed(u2, 'zz-other');

  const all = await json(chorus.sdk.get({ path: '/channels' }));
  for (const name of ['presence-q8-room', 'q8-alpha', 'q8-beta', 'private-q8-gamma', 'zz-other']) {
    assert.ok(name in all.channels, `GET /channels lists ${name}: ${JSON.stringify(all)}`);
  }

  const prefixed = await json(chorus.sdk.get({ path: '/channels', params: { filter_by_prefix: 'q8-' } }));
  assert.deepEqual(Object.keys(prefixed.channels).sort(), ['q8-alpha', 'q8-beta']);

  const presence = await json(
    chorus.sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-q8', info: 'user_count' } }),
  );
  assert.deepEqual(presence, { channels: { 'presence-q8-room': { user_count: 2 } } });

  const room = await json(
    chorus.sdk.get({ path: '/channels/presence-q8-room', params: { info: 'subscription_count,user_count' } }),
  );
  assert.equal(room.occupied, true);
  assert.equal(room.user_count, 2, 'user_count counts distinct users');
  assert.equal(room.subscription_count, 3, 'subscription_count counts connections');

  const alpha = await json(chorus.sdk.get({ path: '/channels/q8-alpha', params: { info: 'subscription_count' } }));
  assert.equal(alpha.occupied, true);
  assert.equal(alpha.subscription_count, 2);

  const plain = await json(chorus.sdk.get({ path: '/channels/q8-beta' }));
  assert.equal(plain.occupied, true);

  const empty = await json(chorus.sdk.get({ path: '/channels/q8-nobody-here' }));
  assert.equal(empty.occupied, false);

  const users = await json(chorus.sdk.get({ path: '/channels/presence-q8-room/users' }));
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2']);
  for (const u of users.users) assert.deepEqual(Object.keys(u), ['id'], 'users entries are {id}');

  // Unsubscribing updates occupancy.
  u2.unsubscribe('q8-beta');
  await waitUntil(
    async () => (await json(chorus.sdk.get({ path: '/channels/q8-beta' }))).occupied === false,
    'q8-beta to become unoccupied after unsubscribe',
  );
  const after = await json(chorus.sdk.get({ path: '/channels', params: { filter_by_prefix: 'q8-' } }));
  assert.deepEqual(Object.keys(after.channels), ['q8-alpha']);
});

chorus.test('trigger with info returns subscription_count / user_count per channel', async () => {
  const a = chorus.pusher({ user: member('7') });
  const b = chorus.pusher({ user: member('8') });
  await subscribed(a, 'info-pub');
  await subscribed(b, 'info-pub');
  await subscribed(a, 'presence-info');
  await subscribed(b, 'presence-info');
  const pub = await json(chorus.sdk.trigger('info-pub', 'x', {}, { info: 'subscription_count' }));
  assert.deepEqual(pub, { channels: { 'info-pub': { subscription_count: 2 } } });
  const pres = await json(chorus.sdk.trigger('presence-info', 'x', {}, { info: 'subscription_count,user_count' }));
  assert.deepEqual(pres, { channels: { 'presence-info': { subscription_count: 2, user_count: 2 } } });
  const multi = await json(chorus.sdk.trigger(['info-pub', 'info-nobody'], 'x', {}, { info: 'subscription_count' }));
  assert.equal(multi.channels['info-pub'].subscription_count, 2);
  assert.equal(multi.channels['info-nobody']?.subscription_count ?? 0, 0);
  const plain = await json(chorus.sdk.trigger('info-pub', 'x', {}));
  assert.deepEqual(plain, {}, 'without info the trigger response is {}');
});

chorus.test('a request signed with the wrong secret is rejected with 401', async () => {
  const wrong = serverSdk(chorus.server, { secret: 'not-the-secret' });
  const a = chorus.pusher();
  const ca = await subscribed(a, 'auth-check');
  const got = new Recorder('auth-check');
  ca.bind('forged', got.fn);
  const err = await expectRequestError(wrong.trigger('auth-check', 'forged', { x: 1 }));
  assert.equal(err.status, 401, `expected 401, got ${err.status}: ${err.body}`);
  const errGet = await expectRequestError(wrong.get({ path: '/channels' }));
  assert.equal(errGet.status, 401);
  const errKey = await expectRequestError(serverSdk(chorus.server, { key: 'other-key' }).trigger('auth-check', 'forged', {}));
  assert.equal(errKey.status, 401, 'unknown auth_key is rejected with 401');
  await barrier(chorus.sdk, 'auth-check', [a]);
  assert.equal(got.count, 0, 'a rejected trigger must not be delivered');
});

chorus.test('a tampered body (body_md5 mismatch) is rejected with 401', async () => {
  // Sign a request for one body and send another one.
  const signed = chorus.sdk.createSignedQueryString({
    method: 'POST',
    path: `/apps/${APP.id}/events`,
    body: JSON.stringify({ name: 'e', channels: ['x'], data: '{}' }),
  });
  const res = await fetch(`${chorus.server.httpUrl}/apps/${APP.id}/events?${signed}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'evil', channels: ['x'], data: '{}' }),
  });
  assert.equal(res.status, 401);
});

chorus.test('an unknown app id is rejected with 404', async () => {
  const sdk = serverSdk(chorus.server, { appId: 'no-such-app' });
  const err = await expectRequestError(sdk.trigger('x', 'e', {}));
  assert.equal(err.status, 404, `expected 404, got ${err.status}: ${err.body}`);
});

chorus.test('an event payload over max_event_payload_kb (10 KB) is rejected with 413', async () => {
  const a = chorus.pusher();
  const ca = await subscribed(a, 'size-check');
  const got = new Recorder('size-check');
  ca.bind('big', got.fn);
  const err = await expectRequestError(chorus.sdk.trigger('size-check', 'big', 'x'.repeat(11 * 1024)));
  assert.equal(err.status, 413, `expected 413, got ${err.status}: ${err.body}`);
  const errBatch = await expectRequestError(
    chorus.sdk.triggerBatch([{ channel: 'size-check', name: 'big', data: 'y'.repeat(11 * 1024) }]),
  );
  assert.equal(errBatch.status, 413, `batch: expected 413, got ${errBatch.status}: ${errBatch.body}`);
  // Just under the limit is fine.
  const ok = await chorus.sdk.trigger('size-check', 'big', 'z'.repeat(9 * 1024));
  assert.equal(ok.status, 200);
  const [data] = await got.waitFor(1);
  assert.equal(data.length, 9 * 1024);
  assert.equal(got.count, 1);
});
