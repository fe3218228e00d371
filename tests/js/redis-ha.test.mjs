// Redis beyond one plain server, with real processes: two chorus nodes on a redis-server that
// speaks TLS only to an ACL user (`rediss://user:password@…`, the CA given by SSL_CERT_FILE), two
// nodes that find the primary through a redis-sentinel and follow a failover, and two nodes on a
// Redis Cluster whose shard of the channel fails over (the primary killed with SIGKILL under
// traffic in both): cross-node delivery resumes, within a bound this test measures and prints,
// presence stays one membership, with no ghost.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  Recorder,
  clientOf,
  defaultApp,
  delay,
  freePort,
  sdkChannelAuthorizer,
  serverSdk,
  startServer,
  subscribed,
  waitUntil,
} from './lib/harness.mjs';
import { testCa } from './lib/certs.mjs';
import { startNodes, startRedis, startRedisCluster, startSentinel } from './lib/redis.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'chorus-redis-ha-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name) => path.join(dir, name);
const status = async (node) => (await fetch(`${node.httpUrl}/up`).then((r) => r.json())).status;

const client = (node, sdk, member) =>
  clientOf(node, { channelAuthorization: { customHandler: sdkChannelAuthorizer(sdk, member) } });

test('rediss:// with an ACL user: two nodes are one server', async (t) => {
  const ca = testCa(dir);
  const { cert, key } = ca.issue('redis');
  const tlsPort = await freePort();
  const redis = await startRedis(dir, {
    args: [
      '--tls-port', String(tlsPort), '--tls-cert-file', cert, '--tls-key-file', key,
      '--tls-ca-cert-file', ca.ca, '--tls-auth-clients', 'no',
      '--user', 'default', 'off', '--user', 'chorus', 'on', '>s3cret', '~*', '&*', '+@all',
    ],
  });
  const nodes = [];
  const clients = [];
  t.after(async () => {
    clients.forEach((c) => c.disconnect());
    for (const n of nodes) await n.stop();
    await redis.stop();
  });
  const start = async (url) => {
    const node = await startServer({
      settings: { adapter: 'redis', redis_url: url, redis_prefix: `jstls${process.pid}`, shutdown_timeout: 2 },
      env: { SSL_CERT_FILE: ca.ca },
    });
    nodes.push(node);
    return node;
  };
  const url = `rediss://chorus:s3cret@127.0.0.1:${tlsPort}`;
  const a = await start(url);
  const b = await start(url);
  for (const n of [a, b]) await waitUntil(async () => (await status(n)) === 'ok', 'node on Redis over TLS', { timeout: 10000 });
  const sdk = serverSdk(a);
  const onB = client(b, sdk);
  clients.push(onB);
  const got = new Recorder('on B');
  (await subscribed(onB, 'room')).bind('e', got.fn);
  await sdk.trigger('room', 'e', { n: 1 });
  assert.deepEqual(await got.waitFor(1), [{ n: 1 }]);
  // A wrong password is refused: the node serves its own clients only.
  const wrong = await start(`rediss://chorus:wrong@127.0.0.1:${tlsPort}`);
  await delay(1500);
  assert.equal(await status(wrong), 'degraded');
  assert.match(wrong.logs(), /redis unavailable/);
});

/**
 * Two nodes on `ha` (its `settings`); `kill()` takes the Redis that serves the channel `room` down
 * under traffic. Checks and prints how long cross-node delivery took to resume, then that presence
 * is one membership and events reach both nodes once. Returns the first node (for its logs).
 */
async function failover(t, what, ha, kill) {
  const settings = {
    ...ha.settings,
    redis_prefix: `js${what}${process.pid}`,
    node_timeout: 5,
    shutdown_timeout: 2,
  };
  const apps = [defaultApp({ history_channels: ['room'] })];
  const nodes = [];
  const clients = [];
  t.after(async () => {
    clients.forEach((c) => c.disconnect());
    for (const n of nodes) await n.stop();
    await ha.stop();
  });
  nodes.push(...(await startNodes(2, { apps, settings })));
  const [a, b] = nodes;
  const sdkA = serverSdk(a);
  const sdkB = serverSdk(b);
  const ann = client(a, sdkA, { user_id: 'ann', user_info: {} });
  const ben = client(b, sdkA, { user_id: 'ben', user_info: {} });
  clients.push(ann, ben);
  await subscribed(ann, 'presence-team');
  await subscribed(ben, 'presence-team');
  const onB = new Recorder('room on B');
  (await subscribed(ben, 'room')).bind('e', onB.fn);
  await sdkA.trigger('room', 'e', { n: 0 });
  await onB.waitFor(1);

  // Traffic through A while the primary dies.
  let n = 0;
  let publishing = true;
  const killedAt = Date.now();
  kill();
  const traffic = (async () => {
    while (publishing && Date.now() - killedAt < 40000) {
      n += 1;
      await sdkA.trigger('room', 'e', { n, at: Date.now() }).catch(() => {});
      await delay(100);
    }
  })();
  const resumed = await waitUntil(() => onB.calls.find((e) => e.n > 0 && e.at > killedAt), 'cross-node delivery after the failover', { timeout: 30000, interval: 50 });
  const took = Date.now() - killedAt;
  publishing = false;
  await traffic;
  console.log(`# ${what} failover: cross-node delivery resumed ${took} ms after the primary was killed (event ${resumed.n})`);
  assert.ok(took < 20000, `resumed after ${took} ms`);

  // One membership, no ghost, answered through either node; new events reach both nodes once.
  for (const sdk of [sdkA, sdkB]) {
    await waitUntil(async () => {
      const res = await sdk.get({ path: '/channels/presence-team/users' });
      const ids = (await res.json()).users.map((u) => u.id).sort();
      return JSON.stringify(ids) === '["ann","ben"]';
    }, 'presence members after the failover', { timeout: 10000 });
  }
  const onA = new Recorder('room on A');
  (await subscribed(ann, 'room')).bind('e', onA.fn);
  const from = onB.count;
  for (let i = 1; i <= 5; i++) await sdkB.trigger('room', 'e', { after: i });
  await onA.waitFor(5);
  await waitUntil(() => onB.count >= from + 5, 'B got the five');
  await delay(300);
  assert.deepEqual(onA.calls.map((e) => e.after), [1, 2, 3, 4, 5]);
  assert.deepEqual(onB.calls.slice(from).map((e) => e.after), [1, 2, 3, 4, 5]);
  return a;
}

test('Sentinel: the nodes follow a failover of the primary under traffic', async (t) => {
  const ha = await startSentinel(dir);
  const a = await failover(t, 'sentinel', ha, () => ha.primary.kill());
  assert.match(a.logs(), /redis primary \(from the sentinels\)/);
});

test("Redis Cluster: the nodes follow a failover of the channel's shard under traffic", async (t) => {
  const ha = await startRedisCluster(dir, { primaries: 3, replicas: 1 });
  const a = await failover(t, 'cluster', ha, () => ha.primaryOf('{app-id:room}').kill());
  assert.match(a.logs(), /connected to the redis cluster/);
});
