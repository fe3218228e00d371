// A throwaway redis-server for the cluster tests (Debian: apt-get install redis-server;
// REDIS_SERVER overrides the path). Killed when the test process exits.

import { spawn } from 'node:child_process';
import net from 'node:net';

import { HOST, delay, freePort } from './harness.mjs';

const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';

let redisChild = null;
process.on('exit', () => redisChild?.kill('SIGKILL'));

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
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** A throwaway redis-server without persistence on a free loopback port. */
export async function startRedis(dir) {
  const port = await freePort();
  let output = '';
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  redisChild = child;
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve((exited = { code, signal })));
    child.on('error', (error) => resolve((exited = { error: error.message })));
  });
  const redis = {
    port,
    url: `redis://${HOST}:${port}`,
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

