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
