// Presence channels through Laravel Echo's join().here/joining/leaving:
// member lists, one member per user however many connections ("tabs") it has.

import assert from 'node:assert/strict';

import { Recorder, barrier, connected, echoSubscribed, json, useChorus, waitUntil } from './lib/harness.mjs';

const chorus = useChorus();

const alice = { user_id: '1', user_info: { id: 1, name: 'Alice' } };
const bob = { user_id: '2', user_info: { id: 2, name: 'Bob' } };

const byId = (a, b) => a.id - b.id;

/** subscription_count of a channel as reported by the HTTP API. */
async function subscriptionCount(channel) {
  const info = await json(chorus.sdk.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } }));
  return info.subscription_count ?? 0;
}

chorus.test('join().here/joining/leaving with two users', async () => {
  const channel = 'presence-room.1';
  const a = chorus.echo({ user: alice });
  const aHere = new Recorder('A here');
  const aJoining = new Recorder('A joining');
  const aLeaving = new Recorder('A leaving');
  a.join('room.1').here(aHere.fn).joining(aJoining.fn).leaving(aLeaving.fn);
  const [hereA] = await aHere.waitFor(1);
  assert.deepEqual(hereA, [{ id: 1, name: 'Alice' }], 'first member sees only itself');

  const b = chorus.echo({ user: bob });
  const bHere = new Recorder('B here');
  const bJoining = new Recorder('B joining');
  b.join('room.1').here(bHere.fn).joining(bJoining.fn);
  const [hereB] = await bHere.waitFor(1);
  assert.deepEqual([...hereB].sort(byId), [
    { id: 1, name: 'Alice' },
    { id: 2, name: 'Bob' },
  ]);
  const [joined] = await aJoining.waitFor(1);
  assert.deepEqual(joined, { id: 2, name: 'Bob' });

  // Presence members as seen by pusher-js (hash, count, me).
  const members = b.connector.pusher.channel(channel).members;
  assert.equal(members.count, 2);
  assert.equal(members.me.id, '2');
  assert.deepEqual(members.get('1'), { id: '1', info: { id: 1, name: 'Alice' } });

  await barrier(chorus.sdk, channel, [a, b]);
  assert.equal(bJoining.count, 0, 'a new member is not told about itself');
  assert.equal(aJoining.count, 1);

  b.leave('room.1');
  const [left] = await aLeaving.waitFor(1);
  assert.deepEqual(left, { id: 2, name: 'Bob' });
  assert.equal(a.connector.pusher.channel(channel).members.count, 1);
});

chorus.test('a user with two connections (two tabs) joins once and leaves after the last tab', async () => {
  const channel = 'presence-room.2';
  const a = chorus.echo({ user: alice });
  const joining = new Recorder('A joining');
  const leaving = new Recorder('A leaving');
  const aHere = new Recorder('A here');
  a.join('room.2').here(aHere.fn).joining(joining.fn).leaving(leaving.fn);
  await aHere.waitFor(1);

  const bobTab1 = chorus.echo({ user: bob });
  const tab1Here = new Recorder('tab1 here');
  bobTab1.join('room.2').here(tab1Here.fn);
  await tab1Here.waitFor(1);
  await joining.waitFor(1);

  const bobTab2 = chorus.echo({ user: bob });
  const tab2Here = new Recorder('tab2 here');
  bobTab2.join('room.2').here(tab2Here.fn);
  const [hereTab2] = await tab2Here.waitFor(1);
  assert.deepEqual([...hereTab2].sort(byId), [
    { id: 1, name: 'Alice' },
    { id: 2, name: 'Bob' },
  ], 'here() lists each user once even with two connections');
  assert.equal(bobTab2.connector.pusher.channel(channel).members.count, 2, 'presence count counts users, not connections');

  await barrier(chorus.sdk, channel, [a, bobTab1, bobTab2]);
  assert.equal(joining.count, 1, `member_added must fire only for the first connection of a user, got ${JSON.stringify(joining.calls)}`);

  const users = await json(chorus.sdk.get({ path: `/channels/${channel}/users` }));
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2']);
  assert.equal(await subscriptionCount(channel), 3);

  // Close the first tab (a real disconnect), wait until the server has processed it.
  bobTab1.disconnect();
  await waitUntil(async () => (await subscriptionCount(channel)) === 2, 'server to drop the closed tab (subscription_count 2)');
  await barrier(chorus.sdk, channel, [a, bobTab2]);
  assert.equal(leaving.count, 0, `member_removed must not fire while Bob still has a connection, got ${JSON.stringify(leaving.calls)}`);
  const usersAfter = await json(chorus.sdk.get({ path: `/channels/${channel}/users` }));
  assert.deepEqual(usersAfter.users.map((u) => u.id).sort(), ['1', '2']);

  // Last tab leaves by unsubscribing (Echo.leave) rather than disconnecting.
  bobTab2.leave('room.2');
  const [left] = await leaving.waitFor(1);
  assert.deepEqual(left, { id: 2, name: 'Bob' });
  await barrier(chorus.sdk, channel, [a]);
  assert.equal(leaving.count, 1);
  const usersEnd = await json(chorus.sdk.get({ path: `/channels/${channel}/users` }));
  assert.deepEqual(usersEnd.users.map((u) => u.id), ['1']);
});

chorus.test('a member that disconnects without unsubscribing is removed (member_removed)', async () => {
  const a = chorus.echo({ user: alice });
  const aHere = new Recorder('A here');
  const leaving = new Recorder('A leaving');
  a.join('room.3').here(aHere.fn).leaving(leaving.fn);
  await aHere.waitFor(1);
  const b = chorus.echo({ user: bob });
  await connected(b);
  b.join('room.3');
  await echoSubscribed(b, 'presence-room.3');
  b.disconnect();
  const [left] = await leaving.waitFor(1);
  assert.deepEqual(left, { id: 2, name: 'Bob' });
});

chorus.test('presence subscription without channel_data (or with a mismatched signature) is rejected', async () => {
  // channel_data signed for user 1 but sent claiming user 2: signature no longer matches.
  const tampering = ({ socketId, channelName }, cb) => {
    const real = chorus.sdk.authorizeChannel(socketId, channelName, alice);
    cb(null, { auth: real.auth, channel_data: JSON.stringify(bob) });
  };
  const observer = chorus.echo({ user: alice });
  const joining = new Recorder('observer joining');
  const here = new Recorder('observer here');
  observer.join('room.4').here(here.fn).joining(joining.fn);
  await here.waitFor(1);

  const evil = chorus.pusher({ options: { channelAuthorization: { customHandler: tampering } } });
  const succeeded = new Recorder('evil subscription_succeeded');
  const errs = new Recorder('evil errors');
  const ch = evil.subscribe('presence-room.4');
  ch.bind('pusher:subscription_succeeded', succeeded.fn);
  ch.bind('pusher:subscription_error', errs.fn);
  evil.bind('pusher:error', errs.fn);
  await waitUntil(() => errs.count > 0, 'an error for the tampered presence subscription');
  await barrier(chorus.sdk, 'presence-room.4', [observer]);
  assert.equal(succeeded.count, 0);
  assert.equal(joining.count, 0, 'no member_added for a rejected subscription');
});
