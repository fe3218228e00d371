// The admin listener's dashboard in headless Chromium: its figures follow real connections and
// its debug console shows an event triggered through the HTTP API. Screenshots go to
// tests/sdk/screenshots/ (not committed).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';

import { APP, HOST, browser, chorus, freePort, until } from './lib/harness.mjs';

const SHOTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let srv;
let chromium;
before(async () => {
  srv = await chorus({ adminPort: await freePort() });
  chromium = await browser();
});
after(async () => {
  await chromium?.close();
  await srv?.kill();
});

/** A raw Pusher-protocol client subscribed to `channel`. */
function client(channel) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${srv.port}/app/${APP.key}?protocol=7`);
    ws.on('error', reject);
    ws.on('message', (m) => {
      const ev = JSON.parse(m.toString());
      if (ev.event === 'pusher:connection_established') {
        ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } }));
      } else if (ev.event === 'pusher_internal:subscription_succeeded') {
        resolve(ws);
      }
    });
  });
}

test('the dashboard follows connections and its console shows a triggered event', async () => {
  const page = await chromium.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`http://${HOST}:${srv.adminPort}/dashboard`);
  const text = (id) => page.locator(`#${id}`).textContent();
  await until(async () => (await text('connections')) === '0', 'the dashboard shows 0 connections', 10000, 100);

  const clients = [await client('room'), await client('room'), await client('lobby')];
  await until(async () => (await text('connections')) === '3', 'the dashboard shows 3 connections', 10000, 100);
  await until(async () => (await text('busiest')).startsWith('room2'), 'room is the busiest channel', 10000, 100);

  await page.fill('#filter', 'room');
  await page.click('#watch');
  await until(async () => (await text('console-state')) === 'watching', 'the console watching', 10000, 100);
  // The console's stream may open a moment after its state says so: trigger until it shows.
  await until(async () => {
    await srv.pusher.trigger('lobby', 'not-shown', { n: 0 });
    await srv.pusher.trigger('room', 'hello-dashboard', { n: 1 });
    return (await text('log')).includes('hello-dashboard');
  }, 'the triggered event in the console', 10000, 300);
  assert.ok(!(await text('log')).includes('not-shown'), 'the filter keeps other channels out');
  await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });

  for (const ws of clients) ws.close();
  await until(async () => (await text('connections')) === '0', 'the dashboard back at 0', 10000, 100);
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-after.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
