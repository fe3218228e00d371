// The Vue and React chat examples in headless Chromium: Ana and Bruno in two browser contexts,
// against a real chorus, the example backend and the built app. Each step is a subtest; after a
// failed step the rest of that example is skipped (they build on each other).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startStack } from './lib/stack.mjs';
import {
  bodies,
  chatItem,
  connection,
  eventually,
  expectText,
  holdNextMessagePost,
  launchChromium,
  messageSentFrames,
  recordFrames,
  send,
  sleep,
  text,
  waitConnected,
} from './lib/page.mjs';

const SHOTS = join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

async function scenario(t, app, mode) {
  const stack = await startStack(app, mode);
  const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${app}${mode === 'dev' ? '-dev' : ''}-${name}.png`) });
  const browser = await launchChromium();
  const problems = [];
  // What each page's chorus WebSocket received, frame by frame.
  const frames = {};
  const open = async (who) => {
    const context = await browser.newContext({ viewport: { width: 1120, height: 700 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
    page.on('console', (m) => {
      // While chorus is down the browser logs each refused reconnection attempt: expected.
      if (['error', 'warning'].includes(m.type()) && !/WebSocket connection to .* failed/.test(m.text())) {
        problems.push(`${who}: console: ${m.text()}`);
      }
    });
    frames[who] = recordFrames(page);
    await page.goto(stack.url);
    return { context, page };
  };

  let failed = false;
  const step = (name, fn) =>
    t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        if (problems.length) e.message += `\nbrowser:\n${problems.join('\n')}`;
        e.message += `\n${stack.logs()}`;
        throw e;
      }
    });

  let ana, bruno, anaCtx, brunoCtx;
  try {
    await step('Ana and Bruno sign in and connect', async () => {
      ({ page: ana, context: anaCtx } = await open('Ana'));
      ({ page: bruno, context: brunoCtx } = await open('Bruno'));
      await ana.locator('[data-testid=signin-Ana]').click();
      await bruno.locator('[data-testid=signin-Bruno]').click();
      await expectText(ana, '[data-testid=me]', 'Ana');
      await expectText(bruno, '[data-testid=me]', 'Bruno');
      await waitConnected(ana);
      await waitConnected(bruno);
    });

    await step('presence: each sees the other online', async () => {
      await expectText(ana, '[data-testid=online-user]', 'Bruno');
      await expectText(bruno, '[data-testid=online-user]', 'Ana');
    });

    await step('Ana sends; Bruno, in another chat, gets a toast and an unread badge', async () => {
      await chatItem(bruno, 'Carla').click();
      await expectText(bruno, '[data-testid=chat-name]', 'Carla');
      await chatItem(ana, 'Bruno').click();
      await expectText(ana, '[data-testid=chat-status]', /online/);
      // The backend stores and broadcasts the message at once, but its answer reaches Ana's page
      // only 1.5 s later: until then the page shows the message as pending, once.
      const hold = await holdNextMessagePost(ana, 1500);
      await send(ana, 'Hi Bruno! Lunch at 1?');
      const mine = ana.locator('[data-testid=message]', { hasText: 'Hi Bruno! Lunch at 1?' });
      await eventually(
        async () => {
          assert.deepEqual(await bodies(ana), ['Hi Bruno! Lunch at 1?']);
          assert.match(await mine.getAttribute('class'), /\bpending\b/);
          assert.equal((await text(ana, '[data-testid=receipt]')).trim(), 'Sending…');
          assert.equal(await mine.locator('.ticks').count(), 0, 'no sent tick while pending');
        },
        1000,
        'the optimistic insert (pending) before the backend answers',
      );
      assert.equal(hold.state, 'held', 'the pending message was checked before the response reached the page');
      await shot(ana, '0-ana-sending');
      await eventually(async () => assert.equal(hold.state, 'released'), 5000, 'the held response');
      await expectText(ana, '[data-testid=receipt]', 'Sent', 5000);
      assert.doesNotMatch(await mine.getAttribute('class'), /\bpending\b/, 'a normal sent message once answered');
      assert.equal(await mine.locator('.ticks').count(), 1, 'the sent tick once answered');
      assert.deepEqual(await bodies(ana), ['Hi Bruno! Lunch at 1?'], 'once, after the answer too');
      await expectText(bruno, '[data-testid=toast]', 'Hi Bruno! Lunch at 1?');
      await expectText(bruno, '[data-testid=toast]', 'Ana');
      await expectText(chatItem(bruno, 'Ana'), '[data-testid=unread]', '1');
      await sleep(300); // let the toast's slide-in finish for the screenshot
      await expectText(ana, '[data-testid=receipt]', 'Sent');
      await shot(bruno, `1-bruno-toast-and-badge`);
    });

    await step('Bruno opens the chat: history loaded, badge gone, Ana sees "Read"', async () => {
      await chatItem(bruno, 'Ana').click();
      await eventually(async () => assert.deepEqual(await bodies(bruno), ['Hi Bruno! Lunch at 1?']), 10000, 'history');
      assert.equal(await chatItem(bruno, 'Ana').locator('[data-testid=unread]').count(), 0);
      await expectText(ana, '[data-testid=receipt]', 'Read');
      await expectText(ana, '[data-testid=chat-status]', 'in this chat');
    });

    await step('a live message with an attachment: download link works, no duplicate for the sender', async () => {
      await ana.locator('[data-testid=file-input]').setInputFiles({
        name: 'menu.txt',
        mimeType: 'text/plain',
        buffer: Buffer.from('Soup of the day: tomato\n'),
      });
      await send(ana, 'Here is the menu');
      await eventually(
        async () => assert.deepEqual(await bodies(bruno), ['Hi Bruno! Lunch at 1?', 'Here is the menu']),
        10000,
        'the live message',
      );
      const link = bruno.locator('[data-testid=attachment]').last();
      await expectText(bruno, '[data-testid=attachment]', 'menu.txt');
      const fileUrl = new URL(await link.getAttribute('href'), stack.url).href;
      // Only the chat's members get the file: no token 401, Carla (not in this chat) 403.
      const tokenOf = async (userId) =>
        (await (await bruno.request.post(new URL('/api/login', stack.url).href, { data: { user_id: userId } })).json()).token;
      const as = async (userId) =>
        bruno.request.get(fileUrl, { headers: { Authorization: `Bearer ${await tokenOf(userId)}` } });
      assert.equal((await bruno.request.get(fileUrl)).status(), 401, 'the file without a token');
      assert.equal((await as(3)).status(), 403, "the file with the token of Carla, who is not in the chat");
      const res = await as(2);
      assert.equal(res.status(), 200);
      assert.equal(await res.text(), 'Soup of the day: tomato\n');
      assert.match(res.headers()['content-disposition'], /menu\.txt/);
      const [download] = await Promise.all([bruno.waitForEvent('download', { timeout: 10000 }), link.click()]);
      assert.equal(download.suggestedFilename(), 'menu.txt');
      assert.equal(readFileSync(await download.path(), 'utf8'), 'Soup of the day: tomato\n', 'what the click saved');
      // Bruno has the chat open and visible: it is read at once.
      await expectText(ana, '[data-testid=receipt]', 'Read');
      await sleep(300); // a duplicate would arrive by now
      assert.deepEqual(await bodies(ana), ['Hi Bruno! Lunch at 1?', 'Here is the menu']);
      // On the wire, not just on screen (the app would hide a duplicate with the same id): Ana's
      // socket got the MessageRead that followed on private-chat.1, but no MessageSent for what she
      // sent (toOthers); Bruno's socket got the live one.
      assert.ok(
        frames.Ana.some((f) => f.event === 'App\\Events\\MessageRead' && f.channel === 'private-chat.1'),
        "Ana's frames are recorded (the MessageRead that made her receipt \"Read\")",
      );
      assert.deepEqual(messageSentFrames(frames.Ana), [], 'no MessageSent frame on the sender\'s socket');
      assert.deepEqual(
        messageSentFrames(frames.Bruno).map((m) => m.body),
        ['Here is the menu'],
        "Bruno's socket got the live MessageSent, once",
      );
    });

    await step('Bruno types: Ana sees "typing…", gone about 3 s after the last keystroke', async () => {
      await bruno.locator('[data-testid=composer]').pressSequentially('Sounds good', { delay: 60 });
      const lastKey = Date.now();
      await expectText(ana, '[data-testid=chat-status]', 'typing', 5000);
      await expectText(ana, '[data-testid=typing]', 'Bruno is typing');
      await shot(ana, `2-ana-typing-and-read`);
      await shot(bruno, `3-bruno-chat`);
      await eventually(
        async () => assert.doesNotMatch(await text(ana, '[data-testid=chat-status]'), /typing/),
        8000,
        'typing to stop showing',
      );
      const after = Date.now() - lastKey;
      assert.ok(after >= 1500 && after <= 6000, `typing shown until ${after} ms after the last keystroke`);
      assert.equal((await text(ana, '[data-testid=typing]')).trim(), '');
    });

    await step('chorus restarts: both show reconnecting, then resume; the next messages arrive', async () => {
      await stack.chorus.kill();
      await eventually(
        async () => assert.notEqual(await connection(ana).getAttribute('data-state'), 'connected'),
        10000,
        'Ana to notice the outage',
      );
      await expectText(ana, '[data-testid=banner]', 'Reconnecting');
      // Presence is unknown while disconnected: Bruno is not shown online from stale knowledge.
      await expectText(ana, '[data-testid=chat-status]', 'waiting for the connection');
      await expectText(ana, '[data-testid=online-unknown]', 'once connected');
      assert.equal(await ana.locator('[data-testid=online-user]').count(), 0, 'nobody listed online while offline');
      await shot(ana, `4-ana-reconnecting`);
      await sleep(500);
      await stack.chorus.start();
      await waitConnected(ana, 20000);
      await waitConnected(bruno, 20000);
      assert.equal(await ana.locator('[data-testid=banner]').count(), 0);
      // Presence and chat channels are subscribed again: Bruno is online in this chat.
      await expectText(ana, '[data-testid=chat-status]', 'in this chat', 10000);
      await expectText(ana, '[data-testid=online-user]', 'Bruno');
      await send(ana, 'Still there?');
      await eventually(
        async () => assert.equal((await bodies(bruno)).at(-1), 'Still there?'),
        10000,
        'the message after the restart',
      );
      // Bruno sends what he typed before the restart.
      await bruno.locator('[data-testid=send]').click();
      await eventually(async () => assert.equal((await bodies(ana)).at(-1), 'Sounds good'), 10000, "Bruno's reply");
      await expectText(bruno, '[data-testid=receipt]', 'Read');
      await shot(bruno, `6-bruno-after-restart`);
      assert.deepEqual(await bodies(ana), ['Hi Bruno! Lunch at 1?', 'Here is the menu', 'Still there?', 'Sounds good']);
      // After the restart too, each socket got the MessageSent of the other's message only.
      assert.deepEqual(messageSentFrames(frames.Ana).map((m) => m.body), ['Sounds good'], "Ana's socket");
      assert.deepEqual(
        messageSentFrames(frames.Bruno).map((m) => m.body),
        ['Here is the menu', 'Still there?'],
        "Bruno's socket",
      );
    });

    await step('Bruno closes the page: Ana sees him offline with his last-seen time', async () => {
      const closing = Date.now();
      await brunoCtx.close();
      await eventually(
        async () => assert.match(await text(ana, '[data-testid=chat-status]'), /last seen (just now|1 min ago)/),
        15000,
        'last seen',
      );
      assert.equal(await ana.locator('[data-testid=online-user]').count(), 0);
      assert.equal(await chatItem(ana, 'Bruno').locator('[data-testid=online-dot]').count(), 0);
      await shot(ana, `5-ana-bruno-left`);
      // Bruno made no request after closing: only chorus's member_removed webhook, after his socket
      // closed, can have moved his last_seen past that moment.
      const carla = await fetch(`${stack.backendUrl}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user_id: 3 }),
      }).then((r) => r.json());
      await eventually(
        async () => {
          const users = await fetch(`${stack.backendUrl}/api/users`, {
            headers: { Authorization: `Bearer ${carla.token}` },
          }).then((r) => r.json());
          const bruno = users.find((u) => u.name === 'Bruno');
          assert.ok(bruno.last_seen >= closing, `last_seen ${bruno.last_seen} before the close at ${closing}`);
        },
        10000,
        'the webhook marking Bruno as seen when he left',
      );
    });

    await step('the backend authorizes channels per user (403 otherwise)', async () => {
      const login = await fetch(`${stack.backendUrl}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user_id: 3 }), // Carla: not in chat 1 (Ana and Bruno)
      }).then((r) => r.json());
      const auth = (channel, token = login.token) =>
        fetch(`${stack.backendUrl}/broadcasting/auth`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(token && { Authorization: `Bearer ${token}` }) },
          body: new URLSearchParams({ socket_id: '123.456', channel_name: channel }),
        }).then((r) => r.status);
      assert.equal(await auth('private-chat.1'), 403);
      assert.equal(await auth('presence-chat.1'), 403);
      assert.equal(await auth('private-App.Models.User.1'), 403);
      assert.equal(await auth('private-App.Models.User.3'), 200);
      assert.equal(await auth('private-chat.2'), 200);
      assert.equal(await auth('presence-online'), 200);
      assert.equal(await auth('private-chat.1', null), 401);
    });

    assert.deepEqual(problems, [], 'no errors in the pages');
  } finally {
    await browser.close().catch(() => {});
    await stack.close();
  }
}

// Each app as built for production (vite build + vite preview), then as `npm run dev` serves it.
for (const mode of ['build', 'dev']) {
  for (const app of ['vue', 'react']) {
    test(`${app} example (${mode === 'dev' ? 'npm run dev' : 'vite build + preview'})`, { timeout: 150000 }, (t) =>
      scenario(t, app, mode),
    );
  }
}
