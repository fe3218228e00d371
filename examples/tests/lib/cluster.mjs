// Two chorus nodes on one Redis, as README.md's "Several nodes" runs them, with the history in
// Redis, behind small TCP proxies that play the load balancer: the app's WebSocket goes through
// one, the backend's HTTP API calls through another. Each proxy forwards to one node at a time
// and can be switched to the other. All on 127.0.0.1 free ports; every process is killed when the
// test process exits.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChorusServer, freePort, sleep, start, startApp, stop, tail, webhookSettings } from './stack.mjs';

const REDIS_BIN = process.env.REDIS_SERVER || 'redis-server';

/** Answers true once `PING` gets `+PONG` from 127.0.0.1:`port`. */
function ping(port) {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (v) => {
      s.destroy();
      ok(v);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

/** A throwaway redis-server (Debian's), no persistence. */
export class RedisServer {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
  }
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir];
    const { child, log } = start('redis', REDIS_BIN, args, { dir: this.dir });
    this.proc = child;
    const end = Date.now() + 10000;
    while (!(await ping(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}); log:\n${tail(log)}`);
      if (Date.now() > end) throw new Error(`redis-server did not answer within 10 s; log:\n${tail(log)}`);
      await sleep(100);
    }
  }
  async kill() {
    if (this.proc) await stop(this.proc);
  }
}

/**
 * A TCP proxy on a free loopback port that forwards each new connection to 127.0.0.1:`target`,
 * like a load balancer. When either side closes, so does the other: a client behind it sees its
 * node die. While the target does not answer, connections are accepted and closed at once.
 */
export class TcpProxy {
  constructor(name, target) {
    this.name = name;
    this.target = target;
    this.pairs = new Set(); // [client, upstream]
    this.accepted = 0;
  }
  async listen() {
    this.port = await freePort();
    this.server = createServer((client) => this.#forward(client));
    await new Promise((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.port, '127.0.0.1', ok);
    });
  }
  #forward(client) {
    this.accepted += 1;
    const upstream = connect(this.target, '127.0.0.1');
    const pair = [client, upstream];
    this.pairs.add(pair);
    const close = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.setNoDelay(true);
      s.on('error', close);
      s.on('close', close);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
  /** New connections go to `target` from now on; `dropExisting` also closes the current ones. */
  switchTo(target, { dropExisting = false } = {}) {
    this.target = target;
    if (dropExisting) for (const [client, upstream] of [...this.pairs]) client.destroy(), upstream.destroy();
  }
  async close() {
    for (const [client, upstream] of [...this.pairs]) client.destroy(), upstream.destroy();
    if (this.server) await new Promise((ok) => this.server.close(ok));
  }
}

/**
 * Redis, nodes `a` and `b` (Redis adapter, history on), the WebSocket proxy `ws` (to node a), the
 * API proxy `api` (to node b, the backend's CHORUS_URL), the backend and the app (WebSocket to
 * the proxy). `app` is `vue` or `react`, `mode` `build` or `dev` (as startStack).
 * Returns `{ url, backendUrl, redis, a, b, ws, api, logs(), close() }`.
 */
export async function startCluster(app, mode = 'build') {
  const dir = mkdtempSync(join(tmpdir(), `chorus-recovery-${app}-`));
  const redis = new RedisServer(dir, await freePort());
  await redis.start();
  const settings = [
    'adapter = "redis"',
    `redis_url = "${redis.url}"`,
    'redis_prefix = "chat"',
    'node_timeout = 5',
  ];
  // The app keeps history (spelled out; these are the defaults), which lives in Redis.
  const backendPort = await freePort();
  const appSettings = [
    'history_size = 100',
    'history_ttl = 300',
    'history_channels = ["*"]',
    ...webhookSettings(backendPort),
  ];
  const a = new ChorusServer(dir, await freePort(), { name: 'chorus-a', settings, appSettings, adminPort: await freePort() });
  const b = new ChorusServer(dir, await freePort(), { name: 'chorus-b', settings, appSettings, adminPort: await freePort() });
  await a.start();
  await b.start();
  const ws = new TcpProxy('ws', a.port);
  const api = new TcpProxy('api', b.port);
  await ws.listen();
  await api.listen();
  const web = await startApp(dir, app, mode, {
    chorusUrl: `http://127.0.0.1:${api.port}`,
    wsPort: ws.port,
    backendPort,
  });
  const names = ['redis', 'chorus-a', 'chorus-b', 'backend', 'vite'];
  return {
    dir,
    url: web.url,
    backendUrl: web.backendUrl,
    redis,
    a,
    b,
    ws,
    api,
    logs: () => names.map((n) => `--- ${n}\n${tail(join(dir, `${n}.log`))}`).join('\n'),
    async close() {
      await web.close();
      await ws.close();
      await api.close();
      await a.kill();
      await b.kill();
      await redis.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
