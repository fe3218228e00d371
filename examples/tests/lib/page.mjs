// Helpers shared by the browser tests: headless Chromium, bounded waits and what the chat pages
// show (their data-testid attributes).
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
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
}

/** Retries `check` (which throws while not yet true) every 100 ms, at most `timeout` ms. */
export async function eventually(check, timeout = 10000, what = 'condition') {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last?.message}`);
    await sleep(100);
  }
}

export const text = async (page, selector) => (await page.locator(selector).allInnerTexts()).join('\n');

export async function expectText(page, selector, expected, timeout = 10000) {
  await eventually(
    async () => {
      const t = await text(page, selector);
      const ok = expected instanceof RegExp ? expected.test(t) : t.includes(expected);
      assert.ok(ok, `${selector} shows ${JSON.stringify(t)}`);
    },
    timeout,
    `${selector} to show ${expected}`,
  );
}

export const chatItem = (page, name) => page.locator(`[data-testid=chat-item][data-chat-with="${name}"]`);
export const connection = (page) => page.locator('[data-testid=connection]');

export async function waitConnected(page, timeout = 15000) {
  await eventually(
    async () => assert.equal(await connection(page).getAttribute('data-state'), 'connected'),
    timeout,
    'the connection to be connected',
  );
}

export async function bodies(page) {
  return page.locator('[data-testid=message-body]').allInnerTexts();
}

export async function send(page, message) {
  await page.locator('[data-testid=composer]').fill(message);
  await page.locator('[data-testid=send]').click();
}

/**
 * Records the Pusher-protocol frames the page's chorus WebSocket(s) receive (not Vite's HMR
 * socket), parsed: `[{ event, channel, data }]` with `data` parsed too when it is JSON text.
 * Call before `page.goto`; the array fills as frames arrive, across reconnections.
 */
export function recordFrames(page) {
  const frames = [];
  page.on('websocket', (ws) => {
    if (!/\/app\/[^/?]+/.test(new URL(ws.url()).pathname)) return;
    ws.on('framereceived', ({ payload }) => {
      let frame;
      try {
        frame = JSON.parse(payload.toString());
      } catch {
        return;
      }
      if (typeof frame.data === 'string') {
        try {
          frame.data = JSON.parse(frame.data);
        } catch {
          /* plain string data */
        }
      }
      frames.push(frame);
    });
  });
  return frames;
}

/** The `App\Events\MessageSent` frames among `frames`, as their messages. */
export const messageSentFrames = (frames) =>
  frames.filter((f) => f.event === 'App\\Events\\MessageSent').map((f) => f.data.message);

/**
 * Holds the page's next POST of a chat message: the request reaches the backend at once (so the
 * message is stored and broadcast), but its response reaches the page only `ms` later.
 * Returns `{ state }` with `state` 'waiting' (no such POST yet), 'held' or 'released'.
 */
export async function holdNextMessagePost(page, ms) {
  const hold = { state: 'waiting' };
  const pattern = (url) => /^\/api\/chats\/\d+\/messages$/.test(url.pathname);
  const handler = async (route) => {
    if (hold.state !== 'waiting' || route.request().method() !== 'POST') return route.fallback();
    hold.state = 'held';
    const response = await route.fetch();
    await sleep(ms);
    hold.state = 'released';
    await route.fulfill({ response });
    await page.unroute(pattern, handler).catch(() => {});
  };
  await page.route(pattern, handler);
  return hold;
}
