// Starts what one example needs on loopback: chorus, the example backend (fresh SQLite file) and
// the example app (vite build + vite preview, which proxies /api and /broadcasting to the backend).
// Every process is killed when the test process exits. The process helpers are shared with
// cluster.mjs (two chorus nodes on Redis behind a proxy).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const CHORUS_BIN = process.env.CHORUS_BIN || join(ROOT, 'target/debug/chorus');
export const BACKEND_BIN =
  process.env.BACKEND_BIN || join(ROOT, 'examples/backend/target/debug/chorus-chat-backend');

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `url` until it answers (any HTTP status), at most `timeout` ms. */
export async function waitForHttp(url, timeout, child, log) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited (${child.exitCode}); log:\n${tail(log)}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`${url} did not answer within ${timeout} ms; log:\n${tail(log)}`);
}

export const tail = (file) => readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');

/** Spawns a process logging to `dir/name.log`; killed when the test process exits. */
export function start(name, cmd, args, { dir, env, cwd }) {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return { child, log };
}

/** SIGKILL, and wait until it is gone. */
export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** The app's `[[apps.webhooks]]` table sending presence-online's members to the backend. */
export function webhookSettings(backendPort) {
  return [
    '',
    '[[apps.webhooks]]',
    `url = "http://127.0.0.1:${backendPort}/pusher/webhook"`,
    'event_types = ["member_added", "member_removed"]',
    'channel_prefix = "presence-online"',
  ];
}

/**
 * chorus on a fixed port, restartable. `settings` and `appSettings` are extra config lines, top
 * level (e.g. the Redis adapter's) and in the app's table; `name` names its config and log files
 * (several nodes share one directory).
 */
export class ChorusServer {
  constructor(dir, port, { name = 'chorus', settings = [], appSettings = [], adminPort = 0 } = {}) {
    this.dir = dir;
    this.port = port;
    this.adminPort = adminPort;
    this.name = name;
    this.config = join(dir, `${name}.toml`);
    writeFileSync(
      this.config,
      [
        ...settings,
        '',
        '[[apps]]',
        'id = "app-id"',
        'key = "app-key"',
        'secret = "app-secret"',
        'enable_client_events = true',
        'enable_user_authentication = true',
        ...appSettings,
        '',
      ].join('\n'),
    );
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  /** The admin listener (`/metrics`); give `adminPort` to know it. */
  get adminUrl() {
    return `http://127.0.0.1:${this.adminPort}`;
  }
  async start() {
    const args = ['--config', this.config, '--host', '127.0.0.1', '--port', String(this.port),
      '--admin-port', String(this.adminPort)];
    const { child, log } = start(this.name, CHORUS_BIN, args, { dir: this.dir, env: { CHORUS_LOG: 'warn' } });
    this.proc = child;
    await waitForHttp(`${this.url}/up`, 10000, child, log);
  }
  /** Like a crash: SIGKILL, no goodbye to the clients. */
  async kill() {
    if (this.proc) await stop(this.proc);
  }
}

/**
 * Everything one example needs. `app` is `vue` or `react`; `mode` is `build` (vite build +
 * vite preview) or `dev` (the dev server, as `npm run dev`).
 * Returns `{ url, chorus, backendUrl, logs(), close() }`.
 */
export async function startStack(app, mode = 'build') {
  const dir = mkdtempSync(join(tmpdir(), `chorus-example-${app}-`));
  // The backend learns who comes and goes from chorus's webhooks, as a Laravel app would.
  const backendPort = await freePort();
  const chorus = new ChorusServer(dir, await freePort(), {
    adminPort: await freePort(),
    appSettings: webhookSettings(backendPort),
  });
  await chorus.start();
  const web = await startApp(dir, app, mode, { chorusUrl: chorus.url, wsPort: chorus.port, backendPort });
  return {
    dir,
    url: web.url,
    chorus,
    backendUrl: web.backendUrl,
    logs: () => ['chorus', 'backend', 'vite'].map((n) => `--- ${n}\n${tail(join(dir, `${n}.log`))}`).join('\n'),
    async close() {
      await web.close();
      await chorus.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The example backend (fresh SQLite file in `dir`), publishing through the chorus HTTP API at
 * `chorusUrl`, and the app, whose WebSocket goes to 127.0.0.1:`wsPort`.
 * Returns `{ url, backendUrl, close() }`; logs are `dir/backend.log` and `dir/vite.log`.
 */
export async function startApp(dir, app, mode, { chorusUrl, wsPort, backendPort }) {
  backendPort ??= await freePort();
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const backend = start('backend', BACKEND_BIN, [], {
    dir,
    env: {
      HOST: '127.0.0.1',
      PORT: String(backendPort),
      DATABASE: join(dir, 'chat.sqlite'),
      UPLOADS: join(dir, 'uploads'),
      CHORUS_URL: chorusUrl,
    },
  });
  await waitForHttp(`${backendUrl}/api/me`, 10000, backend.child, backend.log);

  // Built as a user would deploy it (pointed at this chorus) and served by `vite preview`, or the
  // dev server.
  const appDir = join(ROOT, 'examples', app);
  const outDir = join(dir, 'dist');
  const vite = join(appDir, 'node_modules/vite/bin/vite.js');
  const chorusEnv = { VITE_CHORUS_HOST: '127.0.0.1', VITE_CHORUS_PORT: String(wsPort), VITE_CHORUS_KEY: 'app-key' };
  const dev = mode === 'dev';
  if (!dev) {
    execFileSync(process.execPath, [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], {
      cwd: appDir,
      env: { ...process.env, ...chorusEnv },
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 60000,
    });
  }
  const webPort = await freePort();
  const serveArgs = dev ? [vite] : [vite, 'preview', '--outDir', outDir];
  const web = start(
    'vite',
    process.execPath,
    [...serveArgs, '--host', '127.0.0.1', '--port', String(webPort), '--strictPort'],
    { dir, cwd: appDir, env: { ...chorusEnv, BACKEND_URL: backendUrl } },
  );
  const url = `http://127.0.0.1:${webPort}`;
  await waitForHttp(url, 15000, web.child, web.log);

  return {
    url,
    backendUrl,
    async close() {
      await stop(web.child);
      await stop(backend.child);
    },
  };
}
