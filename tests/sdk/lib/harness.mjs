// Harness for the SDK tests: a real `chorus` process (start, kill, restart on the same port,
// freeze with SIGSTOP), a small web server (test page, the built npm package, auth endpoints
// signed with the `pusher` server SDK) and helpers. Everything listens on 127.0.0.1 only.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Pusher from 'pusher';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..', '..');
export const NPM_DIR = path.join(ROOT, 'npm');
export const CHORUS_BIN = process.env.CHORUS_BIN || path.join(ROOT, 'target', 'debug', 'chorus');
export const HOST = '127.0.0.1';
export const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value (returned); throws after `timeout` ms. */
export async function until(check, what, timeout = 5000, every = 20) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms: ${what}${last ? ` (${last.message})` : ''}`);
    await sleep(every);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function httpStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(1000, () => {
      req.destroy();
      resolve(0);
    });
  });
}

/**
 * A chorus server on a free port. `kill()` (SIGKILL) and `start()` again reuse the port;
 * `freeze()`/`thaw()` send SIGSTOP/SIGCONT. `config`: more top-level TOML lines (e.g. the Redis
 * adapter), `app`: more lines for the app (e.g. `history_size = 10`).
 */
export async function chorus({ activityTimeout = 30, config: extra = '', app = '', adminPort = 0 } = {}) {
  if (!existsSync(CHORUS_BIN)) throw new Error(`chorus binary missing at ${CHORUS_BIN}: run cargo build -p chorus-server`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chorus-sdk-'));
  const config = path.join(dir, 'chorus.toml');
  await writeFile(
    config,
    `activity_timeout = ${activityTimeout}
${extra}

[[apps]]
id = "${APP.id}"
key = "${APP.key}"
secret = "${APP.secret}"
enable_client_events = true
enable_user_authentication = true
max_connections = 0
max_event_payload_kb = 10
max_client_events_per_second = 10
allowed_origins = ["*"]
${app}
`,
  );
  const port = await freePort();
  let proc = null;
  let log = '';
  const srv = {
    port,
    adminPort,
    log: () => log,
    pusher: new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: HOST, port: String(port), useTLS: false }),
    async start() {
      proc = spawn(CHORUS_BIN, ['--config', config, '--host', HOST, '--port', String(port), '--admin-port', String(adminPort)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const keep = (d) => {
        log = (log + d).slice(-200000);
      };
      proc.stdout.on('data', keep);
      proc.stderr.on('data', keep);
      const p = proc;
      await until(async () => {
        if (p.exitCode !== null) throw new Error(`chorus exited (${p.exitCode}): ${log.slice(-2000)}`);
        return (await httpStatus(`http://${HOST}:${port}/up`)) === 200;
      }, 'chorus /up', 15000, 25);
    },
    async kill() {
      const p = proc;
      proc = null;
      if (!p || p.exitCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      await gone;
    },
    freeze() {
      proc.kill('SIGSTOP');
    },
    thaw() {
      proc.kill('SIGCONT');
    },
    async stop() {
      await srv.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await srv.start();
  return srv;
}

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.json': 'application/json' };

/**
 * The app's web server: `/` the test page, `/sdk/...` the built npm package (npm/),
 * `POST /broadcasting/auth` and `/broadcasting/user-auth` signed with the `pusher` SDK.
 * Requests must carry `X-Test-Token: let-me-in` (proves `auth.headers` are sent); the user is
 * taken from `X-User-Id`/`X-User-Name`. Channels containing `forbidden`, or every channel while
 * `refuse` is true, are refused with 403.
 */
export async function web(srv) {
  const pusher = srv.pusher;
  const state = { refuse: false, requests: [] };
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>chorus sdk test</title></head>
<body><h1>Chorus SDK test page</h1><pre id="log"></pre>
<script type="module">
import { Chorus } from '/sdk/dist/chorus.js';
window.Chorus = Chorus;
window.chorusPort = ${srv.port};
window.sdkReady = true;
</script></body></html>`;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(page);
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      return res.end();
    }
    if (req.method === 'GET' && url.pathname.startsWith('/sdk/')) {
      const file = path.normalize(path.join(NPM_DIR, url.pathname.slice(5)));
      if (!file.startsWith(NPM_DIR) || !existsSync(file)) {
        res.writeHead(404);
        return res.end();
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      return res.end(readFileSync(file));
    }
    if (req.method === 'POST' && url.pathname.startsWith('/broadcasting/')) {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channel = form.get('channel_name');
      state.requests.push({ path: url.pathname, socketId, channel, headers: req.headers });
      const reply = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      if (req.headers['x-test-token'] !== 'let-me-in') return reply(401, { error: 'no token' });
      const id = req.headers['x-user-id'] || '1';
      const name = req.headers['x-user-name'] || 'User ' + id;
      if (url.pathname === '/broadcasting/user-auth') {
        return reply(200, pusher.authenticateUser(socketId, { id, user_info: { name } }));
      }
      if (state.refuse || (channel && channel.includes('forbidden'))) return reply(403, { error: 'forbidden' });
      if (channel.startsWith('presence-')) {
        return reply(200, pusher.authorizeChannel(socketId, channel, { user_id: id, user_info: { id, name } }));
      }
      return reply(200, pusher.authorizeChannel(socketId, channel));
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((r) => server.listen(0, HOST, r));
  const { port } = server.address();
  return {
    url: `http://${HOST}:${port}`,
    state,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/** Chromium (Debian's) driven by playwright-core, with a fresh profile. */
export async function browser() {
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(path.join(os.tmpdir(), 'chorus-sdk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return {
    context,
    async page(url) {
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(url);
      await page.waitForFunction(() => window.sdkReady === true);
      page.errors = errors;
      return page;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** A real `redis-server` (Debian's) on a free port, nothing persisted. */
export async function redis() {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chorus-sdk-redis-'));
  let log = '';
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout.on('data', (d) => (log = (log + d).slice(-20000)));
  proc.stderr.on('data', (d) => (log = (log + d).slice(-20000)));
  await until(
    () =>
      new Promise((resolve, reject) => {
        if (proc.exitCode !== null) return reject(new Error(`redis-server exited: ${log}`));
        const s = net.connect(port, HOST);
        s.once('connect', () => {
          s.write('PING\r\n');
          s.once('data', (d) => {
            s.destroy();
            resolve(String(d).startsWith('+PONG'));
          });
        });
        s.once('error', () => resolve(false));
      }),
    'redis-server up',
    10000,
    50,
  );
  return {
    port,
    url: `redis://${HOST}:${port}`,
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy between clients and chorus, to simulate network outages: `cut()` drops every
 * connection and refuses new ones (accepted, then reset at once) until `restore()`; `target` is
 * the port new connections go to (change it to send reconnects to another node); `targets` lists
 * where each accepted connection went.
 */
export async function proxy(target) {
  const open = new Set();
  const p = { target, refusing: false, targets: [], port: 0 };
  const server = net.createServer((client) => {
    if (p.refusing) return client.resetAndDestroy();
    p.targets.push(p.target);
    const upstream = net.connect(p.target, HOST);
    const pair = [client, upstream];
    for (const s of pair) {
      open.add(s);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('close', () => {
        open.delete(s);
        for (const o of pair) o.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, HOST, r));
  p.port = server.address().port;
  p.cut = () => {
    p.refusing = true;
    for (const s of open) s.resetAndDestroy();
  };
  p.restore = () => {
    p.refusing = false;
  };
  p.close = () =>
    new Promise((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    });
  return p;
}
