// deploy/nginx/chorus.conf, as shipped but for this machine's paths and ports, in front of two
// chorus nodes on one redis-server: nginx terminates TLS (a certificate made here by openssl),
// pusher-js connects through it over wss://, and an event published on either node reaches every
// client whichever node nginx sent it to.
//
// Needs nginx (Debian: apt-get install nginx; NGINX overrides the path) and redis-server.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';

import { APP, HOST, PusherClient, connected, delay, freePort, serverSdk, startServer, subscribed, waitUntil } from './lib/harness.mjs';
import { startRedis } from './lib/redis.mjs';

const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const REPO = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'chorus-nginx-'));
const file = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
  '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', file('key.pem'), '-out', file('cert.pem'));
const ca = readFileSync(file('cert.pem'));

// pusher-js's Node transport takes no CA option: the test certificate is trusted for its sockets
// (verification stays on).
const realConnect = tls.connect;
tls.connect = function connectTrustingTestCert(...args) {
  const i = args.findIndex((a) => a && typeof a === 'object');
  if (i >= 0) args[i] = { ...args[i], ca: args[i].ca ?? ca };
  else args.push({ ca });
  return realConnect.apply(this, args);
};

let redis;
let nodes = [];
let nginx;
let nginxPort;
let nginxLog = '';

/** The shipped site with this machine's upstreams, port and certificate; nothing else changed. */
function site(ports) {
  const shipped = readFileSync(path.join(REPO, 'deploy', 'nginx', 'chorus.conf'), 'utf8');
  const servers = ports.map((p) => `    server ${HOST}:${p};`).join('\n');
  const out = shipped
    .replace(/( {4}server 127\.0\.0\.1:600\d;\n)+/, `${servers}\n`)
    .replace('listen 443 ssl;', `listen ${HOST}:${nginxPort} ssl;`)
    .replace(/ssl_certificate .*;/, `ssl_certificate ${file('cert.pem')};`)
    .replace(/ssl_certificate_key .*;/, `ssl_certificate_key ${file('key.pem')};`);
  assert.ok(out.includes(servers) && out.includes(`listen ${HOST}:${nginxPort} ssl;`), 'the site file has the expected shape');
  return out;
}

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

before(async () => {
  redis = await startRedis(dir);
  const settings = { adapter: 'redis', redis_url: redis.url, redis_prefix: `jsnginx${process.pid}`, node_timeout: 5, shutdown_timeout: 2 };
  nodes = [await startServer({ settings }), await startServer({ settings })];
  nginxPort = await freePort();
  writeFileSync(file('site.conf'), site(nodes.map((n) => n.port)));
  writeFileSync(file('nginx.conf'), [
    'daemon off;', 'worker_processes 1;', `pid ${file('nginx.pid')};`, `error_log ${file('error.log')} info;`,
    'events { worker_connections 256; }',
    'http {', `  log_format upstream '$upstream_addr $status "$request"';`, `  access_log ${file('access.log')} upstream;`, `  client_body_temp_path ${dir};`, `  proxy_temp_path ${dir};`,
    `  fastcgi_temp_path ${dir};`, `  uwsgi_temp_path ${dir};`, `  scgi_temp_path ${dir};`,
    `  include ${file('site.conf')};`, '}', '',
  ].join('\n'));
  nginx = spawn(NGINX, ['-p', dir, '-c', file('nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stdout.on('data', (d) => (nginxLog += d));
  nginx.stderr.on('data', (d) => (nginxLog += d));
  process.on('exit', () => nginx?.kill('SIGKILL'));
  await waitUntil(() => listening(nginxPort), `nginx listening (${nginxLog})`, { timeout: 10000 });
  for (const node of nodes) {
    await waitUntil(async () => (await fetch(`${node.httpUrl}/up`).then((r) => r.json())).status === 'ok',
      'node connected to Redis', { timeout: 10000 });
  }
});

after(async () => {
  nginx?.kill('SIGTERM');
  for (const node of nodes) await node.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('pusher-js through nginx (TLS) to two nodes: every client gets every event once', async () => {
  const clients = [];
  try {
    for (let i = 0; i < 4; i++) {
      clients.push(new PusherClient(APP.key, {
        cluster: 'mt1', wsHost: HOST, wssPort: nginxPort, forceTLS: true, enabledTransports: ['ws'], disableStats: true,
      }));
    }
    const got = clients.map(() => []);
    for (const [i, c] of clients.entries()) {
      await connected(c);
      const ch = await subscribed(c, 'news');
      ch.bind('e', (d) => got[i].push(d.n));
    }
    const counts = await Promise.all(nodes.map(async (n) => {
      const res = await serverSdk(n).get({ path: '/channels/news', params: { info: 'subscription_count' } });
      return (await res.json()).subscription_count;
    }));
    assert.equal(counts[0], 4, `the cluster counts every subscriber (${counts})`);
    await serverSdk(nodes[0]).trigger('news', 'e', { n: 1 });
    await serverSdk(nodes[1]).trigger('news', 'e', { n: 2 });
    await waitUntil(() => got.every((g) => g.length === 2), `every client got both events: ${JSON.stringify(got)}`);
    await delay(100);
    for (const g of got) assert.deepEqual(g, [1, 2]);
  } finally {
    for (const c of clients) c.disconnect();
  }
  // nginx carried them, to both nodes (least_conn): it logs each upgrade once it has closed.
  const upgrades = () => readFileSync(file('access.log'), 'utf8').split('\n')
    .filter((l) => / 101 "GET \/app\/app-key\?protocol=7/.test(l));
  await waitUntil(() => upgrades().length === 4, 'four upgrades in the access log');
  const upstreams = new Set(upgrades().map((l) => l.split(' ')[0]));
  assert.deepEqual([...upstreams].sort(), nodes.map((n) => `${HOST}:${n.port}`).sort());
});
