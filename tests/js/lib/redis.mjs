// A throwaway redis-server for the cluster tests (Debian: apt-get install redis-server;
// REDIS_SERVER overrides the path). Killed when the test process exits.

import { spawn } from 'node:child_process';
import net from 'node:net';

import { HOST, delay, freePort, startServer, waitUntil } from './harness.mjs';

const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';

const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Answers true if a redis-server on `port` replies +PONG to PING within 500 ms. */
function redisPing(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    let reply = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      reply += d.toString();
      // NOAUTH: up, but the default user is off (an ACL test).
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

/**
 * A throwaway redis-server without persistence on a free loopback port. `args` are more
 * redis-server arguments (TLS, ACL users, `--replicaof`); `config` a config file to start from
 * (a sentinel's, with `args` ['--sentinel']).
 */
export async function startRedis(dir, { args = [], config, port: fixed } = {}) {
  const port = fixed ?? (await freePort());
  let output = '';
  const base = ['--port', String(port), '--bind', HOST, '--dir', dir];
  const persistence = config ? [] : ['--save', '', '--appendonly', 'no'];
  const child = spawn(REDIS_SERVER, [...(config ? [config] : []), ...base, ...persistence, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve((exited = { code, signal }));
    });
    child.on('error', (error) => resolve((exited = { error: error.message })));
  });
  const redis = {
    port,
    url: `redis://${HOST}:${port}`,
    output: () => output,
    /** Like a crash: SIGKILL. */
    kill: () => child.kill('SIGKILL'),
    async stop() {
      if (!exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    },
  };
  const deadline = Date.now() + 10000;
  while (!(await redisPing(port))) {
    if (exited || Date.now() > deadline) {
      await redis.stop();
      throw new Error(
        `redis-server (${REDIS_SERVER}) did not answer PING on ${port} (${JSON.stringify(exited)}); ` +
          `is it installed (apt-get install redis-server)? Output:\n${output}`,
      );
    }
    await delay(50);
  }
  return redis;
}


/**
 * A primary, one replica and one Sentinel watching them as `mymaster` (a quorum of one, the
 * primary counted down after 1 s), each a redis-server on a free loopback port. Resolves once the
 * Sentinel knows the replica (so a failover can happen). `settings` are chorus's.
 */
export async function startSentinel(dir) {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const primary = await startRedis(await mkdtemp(path.join(dir, 'primary-')));
  const replica = await startRedis(await mkdtemp(path.join(dir, 'replica-')), {
    args: ['--replicaof', HOST, String(primary.port)],
  });
  const port = await freePort();
  const config = path.join(dir, `sentinel-${port}.conf`);
  await writeFile(config, [
    `sentinel monitor mymaster ${HOST} ${primary.port} 1`,
    'sentinel down-after-milliseconds mymaster 1000',
    'sentinel failover-timeout mymaster 5000',
    '',
  ].join('\n'));
  const sentinel = await startRedis(await mkdtemp(path.join(dir, 'sentinel-')), { config, args: ['--sentinel'], port });
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args]).toString();
  const deadline = Date.now() + 15000;
  while (!cli('sentinel', 'replicas', 'mymaster').includes(String(replica.port))) {
    if (Date.now() > deadline) throw new Error('the sentinel did not learn of the replica within 15 s');
    await delay(100);
  }
  return {
    primary,
    replica,
    sentinel,
    settings: { redis_sentinels: [`redis://${HOST}:${port}`], redis_sentinel_master: 'mymaster' },
    async stop() {
      for (const r of [sentinel, replica, primary]) await r.stop();
    },
  };
}

/**
 * A Redis Cluster of `primaries` primaries, each with `replicas` replicas, each a redis-server on
 * a free loopback port, joined by `redis-cli --cluster create` (a replica takes over its primary's
 * slots 2 s after the primary stops answering). Resolves once every node says `cluster_state:ok`.
 * `settings` are chorus's (`redis_cluster_nodes`); `primaryOf(key)` is the server serving `key`.
 */
export async function startRedisCluster(dir, { primaries = 3, replicas = 0 } = {}) {
  const { mkdtemp } = await import('node:fs/promises');
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const nodes = [];
  const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { timeout: 10000 }).toString();
  try {
    for (let i = 0; i < primaries * (1 + replicas); i++) {
      const port = await freePort();
      nodes.push(
        await startRedis(await mkdtemp(path.join(dir, `shard-${i}-`)), {
          port,
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--cluster-replica-validity-factor', '0'],
        }),
      );
    }
    const addrs = nodes.map((n) => `${HOST}:${n.port}`);
    execFileSync('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes'], {
      stdio: 'pipe',
      timeout: 30000,
    });
    const deadline = Date.now() + 20000;
    const ok = (n) => cli(n.port, 'cluster', 'info').includes('cluster_state:ok');
    while (!nodes.every(ok)) {
      if (Date.now() > deadline) throw new Error('the redis cluster did not reach cluster_state:ok within 20 s');
      await delay(100);
    }
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
  return {
    nodes,
    settings: { redis_cluster_nodes: nodes.slice(0, primaries).map((n) => n.url) },
    /** The node that serves `key` now (asked of any live node). */
    primaryOf(key) {
      for (const n of nodes) {
        try {
          const slot = Number(cli(n.port, 'cluster', 'keyslot', key).trim());
          // "<id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot ranges…>"
          for (const line of cli(n.port, 'cluster', 'nodes').split('\n')) {
            const f = line.split(' ');
            if (!f[2]?.includes('master') || f[2].includes('fail')) continue;
            const port = Number(f[1].split(':')[1].split('@')[0]);
            for (const range of f.slice(8)) {
              const [lo, hi = lo] = range.split('-').map(Number);
              if (slot >= lo && slot <= hi) return nodes.find((x) => x.port === port);
            }
          }
        } catch {
          /* a dead node: ask the next */
        }
      }
      return undefined;
    },
    async stop() {
      for (const n of nodes) await n.stop();
    },
  };
}

/**
 * `count` chorus nodes with the Redis adapter (`settings`: redis_url or the Sentinel keys, and any
 * other top-level key), each returned once it reached Redis (`/up` says ok).
 */
export async function startNodes(count, { apps, settings, env } = {}) {
  const nodes = [];
  try {
    for (let i = 0; i < count; i++) {
      const node = await startServer({ apps, settings: { adapter: 'redis', ...settings }, env });
      nodes.push(node);
      await waitUntil(
        async () => (await fetch(`${node.httpUrl}/up`).then((r) => r.json())).status === 'ok',
        `node ${i} (port ${node.port}) connected to Redis`,
        { timeout: 10000 },
      );
    }
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
  return nodes;
}

/**
 * A redis-server and `count` chorus nodes on it for one test `t` (all stopped, and the folder
 * removed, when it ends). `settings` are chorus's besides `redis_url`.
 */
export async function redisCluster(t, count, { apps, settings } = {}) {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chorus-js-redis-'));
  const redis = await startRedis(dir);
  const nodes = [];
  t.after(async () => {
    for (const n of nodes) await n.stop();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });
  nodes.push(...(await startNodes(count, { apps, settings: { redis_url: redis.url, ...settings } })));
  return { redis, nodes };
}
