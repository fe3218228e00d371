// User authentication (pusher:signin), sendToUser via #server-to-user-<id>,
// and terminateUserConnections (close code 4009).

import assert from 'node:assert/strict';

import {
  Recorder,
  barrier,
  connected,
  nextEvent,
  pingBarrier,
  pusherErrorCode,
  signedIn,
  subscribed,
  useChorus,
  waitUntil,
  withTimeout,
} from './lib/harness.mjs';

const chorus = useChorus();

/** Server-side barrier for one user: sendToUser a token and wait for it. */
async function userBarrier(userId, clients) {
  const token = `ub-${Date.now()}-${Math.random()}`;
  const waits = clients.map((c) => {
    const rec = new Recorder(`user barrier ${userId}`);
    const handler = (d) => d?.token === token && rec.fn(d);
    c.user.bind('test-user-barrier', handler);
    return rec.waitFor(1).finally(() => c.user.unbind('test-user-barrier', handler));
  });
  await chorus.sdk.sendToUser(userId, 'test-user-barrier', { token });
  await Promise.all(waits);
}

chorus.test('signin() succeeds and sendToUser reaches every connection of that user only', async () => {
  const tab1 = chorus.pusher({ signinAs: { id: '10', name: 'Ten' } });
  const tab2 = chorus.pusher({ signinAs: { id: '10', name: 'Ten' } });
  const other = chorus.pusher({ signinAs: { id: '11', name: 'Eleven' } });
  const got1 = new Recorder('tab1');
  const got2 = new Recorder('tab2');
  const gotOther = new Recorder('other');
  tab1.user.bind('notify', got1.fn);
  tab2.user.bind('notify', got2.fn);
  other.user.bind('notify', gotOther.fn);
  for (const c of [tab1, tab2, other]) c.signin();

  const data = await signedIn(tab1);
  assert.deepEqual(data, { id: '10', name: 'Ten' }, 'pusher:signin_success carries the signed user_data');
  await signedIn(tab2);
  await signedIn(other);

  await chorus.sdk.sendToUser('10', 'notify', { text: 'hello 10' });
  assert.deepEqual((await got1.waitFor(1))[0], { text: 'hello 10' });
  assert.deepEqual((await got2.waitFor(1))[0], { text: 'hello 10' });
  await userBarrier('11', [other]);
  assert.equal(gotOther.count, 0, "another user's connection must not get the event");
});

chorus.test('Echo connector.signin() then sendToUser reaches the user', async () => {
  const echo = chorus.echo({ signinAs: { id: '15', name: 'Fifteen' } });
  const pusher = echo.connector.pusher;
  const got = new Recorder('echo user event');
  pusher.user.bind('App\\Notifications\\Ping', got.fn);
  echo.connector.signin();
  await signedIn(pusher);
  await chorus.sdk.sendToUser('15', 'App\\Notifications\\Ping', { ok: true });
  assert.deepEqual((await got.waitFor(1))[0], { ok: true });
});

chorus.test('a signin with a forged signature is rejected', async () => {
  const forged = ({ socketId }, cb) =>
    cb(null, { auth: `app-key:${'ab'.repeat(32)}`, user_data: JSON.stringify({ id: '12' }) });
  const pusher = chorus.pusher({ options: { userAuthentication: { customHandler: forged } } });
  const errors = new Recorder('errors');
  pusher.connection.bind('error', errors.fn);
  const success = new Recorder('signin_success');
  pusher.connection.bind('message', (ev) => ev.event === 'pusher:signin_success' && success.fn(ev));
  pusher.signin();
  await connected(pusher);
  // Pusher answers with pusher:error (4009) and closes the connection.
  await waitUntil(() => errors.count > 0 || pusher.connection.state !== 'connected', 'an error for the forged signin');
  assert.equal(success.count, 0, 'forged signin must not succeed');
});

chorus.test('a connection that is not signed in (or signed in as another user) cannot subscribe to #server-to-user-<id>', async () => {
  const victim = chorus.pusher({ signinAs: { id: '20' } });
  victim.signin();
  await signedIn(victim);
  const victimGot = new Recorder('victim');
  victim.user.bind('secret', victimGot.fn);

  const spy = chorus.pusher();
  const other = chorus.pusher({ signinAs: { id: '21' } });
  other.signin();
  await signedIn(other);
  const leaked = new Recorder('leaked');
  for (const c of [spy, other]) {
    await subscribed(c, 'spy-barrier');
    c.connection.bind('message', (ev) => ev.channel === '#server-to-user-20' && !ev.event.startsWith('pusher') && leaked.fn(ev));
    // pusher-js refuses '#' channel names, so speak the protocol directly.
    c.send_event('pusher:subscribe', { channel: '#server-to-user-20', auth: '' });
  }
  // pong (or a closed connection) => the server has processed the subscribe attempt.
  const outcomes = [await pingBarrier(spy), await pingBarrier(other)];

  await chorus.sdk.sendToUser('20', 'secret', { s: 1 });
  await victimGot.waitFor(1);
  const alive = [spy, other].filter((c, i) => outcomes[i] === 'pong' && c.connection.state === 'connected');
  if (alive.length) await barrier(chorus.sdk, 'spy-barrier', alive);
  assert.equal(leaked.count, 0, `#server-to-user-20 events leaked: ${JSON.stringify(leaked.calls)}`);
});

chorus.test('terminateUserConnections closes all connections of that user with 4009, not others', async () => {
  const tab1 = chorus.pusher({ signinAs: { id: '42' } });
  const tab2 = chorus.pusher({ signinAs: { id: '42' } });
  const bystander = chorus.pusher({ signinAs: { id: '43' } });
  for (const c of [tab1, tab2, bystander]) c.signin();
  await Promise.all([signedIn(tab1), signedIn(tab2), signedIn(bystander)]);

  const codes1 = new Recorder('tab1 error codes');
  const codes2 = new Recorder('tab2 error codes');
  tab1.connection.bind('error', (e) => codes1.fn(pusherErrorCode(e)));
  tab2.connection.bind('error', (e) => codes2.fn(pusherErrorCode(e)));
  const states = [];
  tab1.connection.bind('state_change', ({ current }) => states.push(current));
  const down1 = nextEvent(tab1.connection, 'disconnected', 'tab1 disconnected');
  const down2 = nextEvent(tab2.connection, 'disconnected', 'tab2 disconnected');

  const res = await chorus.sdk.terminateUserConnections('42');
  assert.equal(res.status, 200);
  await Promise.all([down1, down2]);
  await codes1.waitFor(1);
  await codes2.waitFor(1);
  assert.ok(codes1.calls.includes(4009), `tab1 expected close/error code 4009, got ${JSON.stringify(codes1.calls)}`);
  assert.ok(codes2.calls.includes(4009), `tab2 expected close/error code 4009, got ${JSON.stringify(codes2.calls)}`);
  // 4009 is in the 4000-4099 "do not reconnect" range: pusher-js stays disconnected.
  assert.equal(tab1.connection.state, 'disconnected');
  assert.ok(!states.includes('connecting'), `pusher-js must not reconnect after 4009: ${states}`);

  assert.equal(bystander.connection.state, 'connected');
  await userBarrier('43', [bystander]);
});

chorus.test('terminateUserConnections for a user with no connections is a 200 no-op', async () => {
  const res = await chorus.sdk.terminateUserConnections('nobody-here');
  assert.equal(res.status, 200);
  const pusher = chorus.pusher();
  await withTimeout(connected(pusher), 5000, 'server still serving');
});
