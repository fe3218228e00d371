// Test harness for the chorus black-box JS suite.
//
// Every test file calls `useChorus()` once: it starts a real `chorus` process
// on a free 127.0.0.1 port before the file's tests, stops it (SIGTERM) after
// them, disconnects every client a test created after each test, and prints
// the server's log lines of a failing test.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, test } from 'node:test';

import PusherClient from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';

export { PusherClient, PusherServer, Echo };

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..', '..');
export const CHORUS_BIN = process.env.CHORUS_BIN || path.join(REPO_ROOT, 'target', 'debug', 'chorus');

export const HOST = '127.0.0.1';
export const APP = Object.freeze({ id: 'app-id', key: 'app-key', secret: 'app-secret' });
export const DEFAULT_TIMEOUT = 5000;

const MAX_LOG_CHARS = 4 * 1024 * 1024;

// pusher-js's Node transport (a bundled faye-websocket) arms a 30 s "close
// timeout" timer when pusher-js calls close() on a socket the SERVER already
// closed (it does that on every 4000-4099 close, e.g. terminate_connections),
// and never clears it. That only keeps the test process alive for 30 s after
// its tests finished, so such timers are unref'd. Nothing else is changed.
{
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = function patchedSetTimeout(fn, ms, ...rest) {
    const timer = realSetTimeout(fn, ms, ...rest);
    if (typeof fn === 'function' && ms >= 30000 && /_beginClose\(/.test(fn.toString())) timer.unref?.();
    return timer;
  };
}

// ---------------------------------------------------------------------------
// Small async helpers
// ---------------------------------------------------------------------------

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `Timed out after Nms: <what>` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `predicate` (sync or async) until it returns a truthy value, which is returned. */
export async function waitUntil(predicate, what, { timeout = DEFAULT_TIMEOUT, interval = 20 } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const suffix = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`Timed out after ${timeout} ms waiting for: ${what}${suffix}`);
    }
    await delay(interval);
  }
}

/**
 * Resolves with the first `event` emitted by a pusher-js style emitter
 * (anything with bind/unbind: a Pusher channel, pusher.connection, pusher.user).
 * Resolves with an array of the callback's arguments when there are several.
 */
export function nextEvent(emitter, event, what = event, timeout = DEFAULT_TIMEOUT) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args.length > 1 ? args : args[0]);
    emitter.bind(event, handler);
  });
  return withTimeout(p, timeout, `event "${event}" (${what})`).finally(() => emitter.unbind(event, handler));
}

/**
 * Collects every call of a callback; lets a test await the n-th call.
 * `calls` holds each call's first argument (the event data: pusher-js channel
 * callbacks also pass a metadata object second); `args` holds all arguments.
 */
export class Recorder {
  constructor(name = 'recorder') {
    this.name = name;
    this.calls = [];
    this.args = [];
    this.waiters = [];
    this.fn = (...args) => {
      this.calls.push(args[0]);
      this.args.push(args);
      this.waiters = this.waiters.filter((w) => {
        if (this.calls.length >= w.count) {
          w.resolve(this.calls.slice());
          return false;
        }
        return true;
      });
    };
  }

  get count() {
    return this.calls.length;
  }

  get last() {
    return this.calls[this.calls.length - 1];
  }

  /** Resolves with all calls once at least `count` happened. */
  waitFor(count = 1, timeout = DEFAULT_TIMEOUT) {
    if (this.calls.length >= count) return Promise.resolve(this.calls.slice());
    const p = new Promise((resolve) => this.waiters.push({ count, resolve }));
    return withTimeout(p, timeout, `${this.name}: ${count} call(s), saw ${this.calls.length}`).catch((err) => {
      err.message += `; calls so far: ${JSON.stringify(this.calls).slice(0, 2000)}`;
      throw err;
    });
  }
}

/** Extracts the numeric Pusher error code from a pusher-js connection "error" event. */
export function pusherErrorCode(err) {
  return err?.data?.code ?? err?.error?.data?.code ?? err?.error?.code ?? null;
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/** Finds a free TCP port on 127.0.0.1 by binding port 0 and closing again. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function tomlValue(v) {
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  throw new Error(`cannot encode ${typeof v} in TOML`);
}

export function defaultApp(overrides = {}) {
  return {
    id: APP.id,
    key: APP.key,
    secret: APP.secret,
    enable_client_events: true,
    enable_user_authentication: true,
    max_connections: 0,
    max_event_payload_kb: 10,
    max_client_events_per_second: 10,
    allowed_origins: ['*'],
    ...overrides,
  };
}

/**
 * The TOML config. `settings` are extra top-level keys, e.g. the Redis adapter's
 * ({ adapter: 'redis', redis_url, redis_prefix, node_timeout }); an app's `webhooks` (an array
 * of { url, event_types, channel_prefix }) becomes its `[[apps.webhooks]]` tables.
 */
export function renderConfig({ activityTimeout = 30, apps = [defaultApp()], settings = {} } = {}) {
  const lines = [`activity_timeout = ${activityTimeout}`];
  for (const [k, v] of Object.entries(settings)) lines.push(`${k} = ${tomlValue(v)}`);
  lines.push('');
  for (const { webhooks = [], ...app } of apps) {
    lines.push('[[apps]]');
    for (const [k, v] of Object.entries(app)) lines.push(`${k} = ${tomlValue(v)}`);
    lines.push('');
    // Sub-tables last: keys after them would belong to them.
    for (const hook of webhooks) {
      lines.push('[[apps.webhooks]]');
      for (const [k, v] of Object.entries(hook)) lines.push(`${k} = ${tomlValue(v)}`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

function httpGetStatus(url, ca) {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: 1000, ...(ca && { ca }) }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/**
 * Starts a chorus process. Returns { port, httpUrl, logs(), logsSince(mark), stop() }.
 * Options: { activityTimeout, apps, settings } (see renderConfig), startTimeout (ms), `env` (more
 * environment variables), and `ca`
 * (PEM) when `settings` has `tls_cert`/`tls_key`: the server then speaks https and wss.
 */
export async function startServer(options = {}) {
  if (!existsSync(CHORUS_BIN)) {
    throw new Error(
      `chorus binary not found at ${CHORUS_BIN}. Build it with \`cargo build -p chorus-server\` ` +
        'or point CHORUS_BIN at it.',
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'chorus-js-'));
  const configPath = path.join(dir, 'chorus.toml');
  await writeFile(configPath, renderConfig(options));
  const port = await freePort();

  let log = '';
  let total = 0; // characters ever written (log keeps only the last MAX_LOG_CHARS)
  const append = (chunk) => {
    const text = chunk.toString();
    total += text.length;
    log += text;
    if (log.length > MAX_LOG_CHARS) log = log.slice(log.length - MAX_LOG_CHARS);
  };
  // Files run one after another, but an admin listener on a fixed port would still collide with
  // anything else on this machine: a free one.
  const child = spawn(CHORUS_BIN, ['--config', configPath, '--host', HOST, '--port', String(port), '--admin-port', '0'], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      liveChildren.delete(child);
      resolve(exited);
    });
    child.on('error', (err) => {
      exited = { error: err };
      liveChildren.delete(child);
      resolve(exited);
    });
  });

  const server = {
    port,
    host: HOST,
    httpUrl: `${options.settings?.tls_cert ? 'https' : 'http'}://${HOST}:${port}`,
    configPath,
    logs: () => log,
    /** A position in the output stream, for logsSince(). */
    mark: () => total,
    logsSince: (mark) => log.slice(Math.max(0, log.length - (total - mark))),
    get exited() {
      return exited;
    },
    /** Sends `signal` (e.g. 'SIGHUP') to the process. */
    signal: (signal) => child.kill(signal),
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitPromise;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };

  const deadline = Date.now() + (options.startTimeout ?? 10000);
  for (;;) {
    if (exited) {
      await server.stop();
      throw new Error(`chorus exited before becoming ready (${JSON.stringify(exited)}). Output:\n${log}`);
    }
    if ((await httpGetStatus(`${server.httpUrl}/up`, options.ca)) === 200) break;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`chorus did not answer 200 on GET /up within 10 s. Output:\n${log}`);
    }
    await delay(50);
  }
  return server;
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/** A pusher-js client of `server` (plain ws:// on 127.0.0.1); `options` are merged last. */
export function clientOf(server, options = {}) {
  return new PusherClient(APP.key, {
    wsHost: HOST,
    wsPort: server.port,
    wssPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: '',
    disableStats: true,
    ...options,
  });
}

/** The official Node server SDK ("the Laravel backend"), pointed at chorus. */
export function serverSdk(server, overrides = {}) {
  return new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: HOST,
    port: String(server.port),
    useTLS: false,
    ...overrides,
  });
}

/**
 * pusher-js customHandler for channel authorization that signs with the server
 * SDK, as a Laravel `/broadcasting/auth` route would. `user` is the presence
 * member ({ user_id, user_info }) used for presence channels.
 */
export function sdkChannelAuthorizer(sdk, user) {
  return ({ socketId, channelName }, callback) => {
    setImmediate(() => {
      try {
        const presence = channelName.startsWith('presence-');
        if (presence && !user) throw new Error(`no presence user configured for ${channelName}`);
        callback(null, sdk.authorizeChannel(socketId, channelName, presence ? user : undefined));
      } catch (err) {
        callback(err, null);
      }
    });
  };
}

/** pusher-js customHandler for user authentication (signin) signing with the server SDK. */
export function sdkUserAuthenticator(sdk, userData) {
  return ({ socketId }, callback) => {
    setImmediate(() => {
      try {
        if (!userData) throw new Error('no user configured for signin');
        callback(null, sdk.authenticateUser(socketId, userData));
      } catch (err) {
        callback(err, null);
      }
    });
  };
}

/** Creates the per-file context: server lifecycle, client tracking and a `test` wrapper. */
export function useChorus(serverOptions = {}) {
  const ctx = {
    server: null,
    sdk: null,
    closers: [],

    /** Base pusher-js options for connecting to this server. */
    baseOptions() {
      return {
        wsHost: HOST,
        wsPort: ctx.server.port,
        wssPort: ctx.server.port,
        forceTLS: false,
        enabledTransports: ['ws'],
        cluster: '',
        disableStats: true,
      };
    },

    /** pusher-js auth options whose customHandlers sign with the server SDK. */
    sdkAuthOptions(sdk, user, signinAs) {
      return {
        channelAuthorization: { customHandler: sdkChannelAuthorizer(sdk, user) },
        userAuthentication: { customHandler: sdkUserAuthenticator(sdk, signinAs) },
      };
    },

    /**
     * A pusher-js client. `user` = presence member {user_id, user_info} used by
     * the channel authorizer; `signinAs` = user data {id, ...} for signin().
     * `options` are merged last (e.g. a different key or a real authEndpoint).
     */
    pusher({ user, signinAs, key = APP.key, sdk = ctx.sdk, sdkAuth = true, options = {} } = {}) {
      const client = new PusherClient(key, {
        ...ctx.baseOptions(),
        ...(sdkAuth ? ctx.sdkAuthOptions(sdk, user, signinAs) : {}),
        ...options,
      });
      ctx.closers.push(() => client.disconnect());
      return client;
    },

    /** A Laravel Echo instance using the given pusher-js constructor (real Echo code path). */
    echo({ user, signinAs, broadcaster = 'reverb', sdk = ctx.sdk, sdkAuth = true, options = {} } = {}) {
      const echo = new Echo({
        broadcaster,
        key: APP.key,
        ...ctx.baseOptions(),
        Pusher: PusherClient,
        // Echo's shared default `auth` object must not be mutated across instances.
        auth: { headers: {} },
        ...(sdkAuth ? ctx.sdkAuthOptions(sdk, user, signinAs) : {}),
        withoutInterceptors: true,
        ...options,
      });
      ctx.closers.push(() => echo.disconnect());
      return echo;
    },

    /** Registers any cleanup function to run after the current test. */
    onCleanup(fn) {
      ctx.closers.push(fn);
    },

    /** node:test `test` that prints the server output of the test when it fails. */
    test(name, fnOrOptions, maybeFn) {
      const fn = typeof fnOrOptions === 'function' ? fnOrOptions : maybeFn;
      const opts = typeof fnOrOptions === 'function' ? {} : fnOrOptions;
      return test(name, opts, async (t) => {
        if (!ctx.server) throw new Error('chorus server is not running (see the before hook error)');
        const mark = ctx.server.mark();
        try {
          await fn(t);
        } catch (err) {
          let out = ctx.server.logsSince(mark);
          if (!out.trim()) {
            const tail = ctx.server.logs().split('\n').slice(-40).join('\n');
            out = `(nothing during this test; last lines of the server output:)\n${tail}`;
          }
          process.stderr.write(
            `\n----- chorus output during failing test "${name}" -----\n${out}\n` +
              (ctx.server.exited ? `!!! chorus exited: ${JSON.stringify(ctx.server.exited)}\n` : '') +
              '----- end of chorus output -----\n',
          );
          throw err;
        }
      });
    },
  };

  before(async () => {
    ctx.server = await startServer(serverOptions);
    ctx.sdk = serverSdk(ctx.server);
  });

  afterEach(async () => {
    const closers = ctx.closers.splice(0).reverse();
    for (const close of closers) {
      try {
        await close();
      } catch {
        /* best effort */
      }
    }
  });

  after(async () => {
    if (ctx.server) await ctx.server.stop();
  });

  return ctx;
}

// ---------------------------------------------------------------------------
// pusher-js / Echo state helpers
// ---------------------------------------------------------------------------

/** Resolves with the socket_id once the pusher-js client is connected. */
export async function connected(client, timeout = DEFAULT_TIMEOUT) {
  const pusher = client.connector?.pusher ?? client; // accepts an Echo instance too
  if (pusher.connection.state !== 'connected') {
    await nextEvent(pusher.connection, 'connected', 'pusher-js connection', timeout);
  }
  return pusher.connection.socket_id;
}

/** Subscribes (if needed) and resolves with the channel once subscription succeeded. */
export async function subscribed(pusher, channelName, timeout = DEFAULT_TIMEOUT) {
  const channel = pusher.channel(channelName) ?? pusher.subscribe(channelName);
  if (channel.subscribed) return channel;
  const errors = new Recorder('subscription_error');
  channel.bind('pusher:subscription_error', errors.fn);
  try {
    await waitUntil(
      () => {
        if (errors.count) throw new Error(`subscription_error on ${channelName}: ${JSON.stringify(errors.last)}`);
        return channel.subscribed;
      },
      `subscription to ${channelName}`,
      { timeout },
    ).catch((err) => {
      if (errors.count) err.message = `subscription_error on ${channelName}: ${JSON.stringify(errors.last)}`;
      throw err;
    });
  } finally {
    channel.unbind('pusher:subscription_error', errors.fn);
  }
  return channel;
}

/** Resolves once an Echo channel (by full name) is subscribed. */
export function echoSubscribed(echo, fullName, timeout = DEFAULT_TIMEOUT) {
  return subscribed(echo.connector.pusher, fullName, timeout);
}

/** Resolves once pusher-js's signin completed and `#server-to-user-<id>` is subscribed. */
export async function signedIn(pusher, timeout = DEFAULT_TIMEOUT) {
  await waitUntil(
    () => pusher.user.user_data && pusher.user.serverToUserChannel?.subscribed,
    'pusher-js signin_success and #server-to-user subscription',
    { timeout },
  );
  return pusher.user.user_data;
}

let barrierSeq = 0;

/**
 * Ordering barrier: triggers a server event on `channel` through the HTTP API and
 * waits until every given pusher-js client got it. Anything the server queued to
 * these clients on this channel before the trigger arrives first, so after the
 * barrier a test can assert that some event did NOT arrive without sleeping.
 */
export async function barrier(sdk, channel, clients, timeout = DEFAULT_TIMEOUT) {
  const token = `b${++barrierSeq}-${Date.now()}`;
  const waits = clients.map((client) => {
    const pusher = client.connector?.pusher ?? client;
    const ch = pusher.channel(channel);
    if (!ch) throw new Error(`barrier: client is not subscribed to ${channel}`);
    const rec = new Recorder(`barrier ${token} on ${channel}`);
    const handler = (data) => {
      if (data?.token === token) rec.fn(data);
    };
    ch.bind('test-barrier', handler);
    return rec.waitFor(1, timeout).finally(() => ch.unbind('test-barrier', handler));
  });
  await sdk.trigger(channel, 'test-barrier', { token });
  await Promise.all(waits);
}

/**
 * Per-connection ordering barrier: a pusher:ping answered by pusher:pong means the
 * server has processed every message this client sent before the ping.
 * Resolves 'pong', or 'closed' if the connection went away instead.
 */
export function pingBarrier(pusher, timeout = 5000) {
  const conn = (pusher.connector?.pusher ?? pusher).connection;
  let onMessage;
  let onState;
  const p = new Promise((resolve) => {
    onMessage = (ev) => ev.event === 'pusher:pong' && resolve('pong');
    onState = ({ current }) => current !== 'connected' && resolve('closed');
    conn.bind('message', onMessage);
    conn.bind('state_change', onState);
    conn.send_event('pusher:ping', {});
  });
  return withTimeout(p, timeout, 'pusher:pong after pusher:ping').finally(() => {
    conn.unbind('message', onMessage);
    conn.unbind('state_change', onState);
  });
}

/** Awaits a RequestError from a pusher SDK promise and returns it (fails if it resolved). */
export async function expectRequestError(promise) {
  try {
    const res = await promise;
    const body = await res.text().catch(() => '');
    throw Object.assign(new Error(`expected an HTTP error, got ${res.status}: ${body}`), { unexpectedSuccess: true });
  } catch (err) {
    if (err.unexpectedSuccess) throw err;
    if (err.status === undefined) throw err; // network failure etc.
    return err;
  }
}

/** Reads a JSON body from a pusher SDK response. */
export async function json(resPromise) {
  const res = await resPromise;
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`response ${res.status} is not JSON: ${text}`);
  }
}
