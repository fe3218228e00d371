// A throwaway redis-server for the cluster tests (Debian: apt-get install redis-server;
// REDIS_SERVER overrides the path). Killed when the test process exits.

import { spawn } from 'node:child_process';
import net from 'node:net';

import { HOST, delay, freePort } from './harness.mjs';

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

