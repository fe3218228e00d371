// Issue 7 in the browser: the chat example keeps its message list complete across a server
// restart, with the history in Redis. Two chorus nodes (A, B) on one redis-server; the app's
// WebSocket goes through a TCP proxy (the load balancer) to node A; the backend publishes through
// node B's HTTP API (through a second proxy, so that it can move to node A at the end). Ana and
// Bruno in two Chromium contexts; Bruno has the chat with Ana open.
//
// Node A is killed (SIGKILL) and messages are published while Bruno's page is reconnecting; the
// proxy moves to node B, where the page must recover them through the SDK: the whole list, in
// order, none twice, and not one GET of the chat's history over HTTP after the outage began
// (Playwright counts the page's requests). Then node A starts again, the proxy goes back to it and
// node B is killed: a message published meanwhile is recovered on the restarted node A (the
// history is in Redis, not in the node), and the next one arrives live.
// Each step is a subtest; after a failed step the rest of that example is skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from './lib/cluster.mjs';
import { bodies, chatItem, eventually, expectText, launchChromium, send, sleep, waitConnected } from './lib/page.mjs';

const SHOTS = join(import.meta.dirname, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

/** Open WebSocket connections of the app on one node, from its /metrics. */
async function connections(node) {
  const metrics = await fetch(`${node.adminUrl}/metrics`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text());
  // In a cluster every sample also carries its node label.
  const m = metrics.match(/^chorus_connections\{(?:node="[^"]*",)?app_id="app-id"\} (\d+)$/m);
  assert.ok(m, `no chorus_connections in /metrics:\n${metrics}`);
  return Number(m[1]);
}

async function scenario(t, app) {
  const stack = await startCluster(app, 'build');
  const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${app}-recovery-${name}.png`) });
  const browser = await launchChromium();
  const problems = [];
  // Per page: its GETs of a chat's messages (the history over HTTP) and of the chat list.
  const gets = { Ana: { messages: 0, chats: 0 }, Bruno: { messages: 0, chats: 0 } };
  const open = async (who) => {
    const context = await browser.newContext({ viewport: { width: 1120, height: 700 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
    page.on('console', (m) => {
      // While no node answers the browser logs each failed reconnection attempt: expected.
      if (['error', 'warning'].includes(m.type()) && !/WebSocket connection to .* failed/.test(m.text())) {
        problems.push(`${who}: console: ${m.text()}`);
      }
    });
    page.on('request', (r) => {
      if (r.method() !== 'GET') return;
      const path = new URL(r.url()).pathname;
      if (/^\/api\/chats\/\d+\/messages$/.test(path)) gets[who].messages += 1;
      if (path === '/api/chats') gets[who].chats += 1;
    });
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

  // Ana's side when her page may be offline: the backend's API with her page's token, as her page
  // would call it (no X-Socket-ID: no page of hers has it on screen yet).
  let anaToken, chatId;
  const sendAsAna = async (body) => {
    const form = new FormData();
    form.append('body', body);
    const res = await fetch(`${stack.backendUrl}/api/chats/${chatId}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${anaToken}` },
      body: form,
      signal: AbortSignal.timeout(10000),
    });
    assert.equal(res.status, 201, `sending "${body}": ${res.status} ${await res.text()}`);
  };

  const live = ['Morning Bruno!', 'Did you get the slides?'];
  const missed = ['I sent them at 9', 'Check your inbox', 'Slide 4 has the numbers', 'Call me when you can', 'See you at lunch'];
  const afterRestart = ['Are you back?', 'Great, nothing lost'];
  let ana, bruno;
  let before; // gets, when the outage began
  const noRefetch = (who) => {
    assert.equal(gets[who].messages, before[who].messages, `${who}'s page fetched the chat's messages over HTTP again`);
    assert.equal(gets[who].chats, before[who].chats, `${who}'s page fetched the chat list over HTTP again`);
  };
  const snapshot = () => structuredClone(gets);

  try {
    await step('Ana and Bruno sign in; their WebSockets go through the proxy to node A', async () => {
      ({ page: ana } = await open('Ana'));
      ({ page: bruno } = await open('Bruno'));
      await ana.locator('[data-testid=signin-Ana]').click();
      await bruno.locator('[data-testid=signin-Bruno]').click();
      await waitConnected(ana);
      await waitConnected(bruno);
      await eventually(async () => assert.equal(await connections(stack.a), 2), 5000, 'two connections on node A');
      assert.equal(await connections(stack.b), 0);
      anaToken = await ana.evaluate(() => JSON.parse(sessionStorage.getItem('chorus-chat-session')).token);
      const chats = await fetch(`${stack.backendUrl}/api/chats`, { headers: { Authorization: `Bearer ${anaToken}` } }).then((r) => r.json());
      chatId = chats.find((c) => c.other.name === 'Bruno').id;
    });

    await step('both open the chat; Ana sends two messages live (published through node B)', async () => {
      await chatItem(bruno, 'Ana').click();
      await chatItem(ana, 'Bruno').click();
      await expectText(bruno, '[data-testid=chat-status]', 'in this chat');
      await expectText(ana, '[data-testid=chat-status]', 'in this chat');
      for (const m of live) {
        await send(ana, m);
        await eventually(async () => assert.equal((await bodies(bruno)).at(-1), m), 10000, `"${m}" on Bruno's page`);
      }
      assert.deepEqual(await bodies(bruno), live);
      assert.deepEqual(await bodies(ana), live);
      assert.ok(gets.Bruno.messages >= 1, 'opening the chat loaded its history over HTTP');
    });

    await step('node A is killed: the pages reconnect in vain while Ana sends 5 messages; the proxy moves to node B', async () => {
      await sleep(300); // nothing still in flight from opening the chat
      before = snapshot();
      await stack.a.kill();
      await expectText(bruno, '[data-testid=banner]', 'Reconnecting', 10000);
      await expectText(ana, '[data-testid=banner]', 'Reconnecting', 10000);
      // The proxy still points at the dead node (its health check has not noticed yet): the
      // first three are surely missed.
      for (const m of missed.slice(0, 3)) await sendAsAna(m);
      await sleep(500);
      assert.deepEqual(await bodies(bruno), live, 'Bruno is offline: nothing arrives');
      await shot(bruno, '1-bruno-reconnecting');
      // The proxy moves to node B; the last two are published at once, while the pages are
      // still waiting out their backoff (or already subscribing again: either way, once).
      stack.ws.switchTo(stack.b.port);
      for (const m of missed.slice(3)) await sendAsAna(m);
    });

    await step('Bruno reconnects to node B: all 7 messages in order, none twice, no refetch over HTTP', async () => {
      await waitConnected(bruno, 20000);
      await waitConnected(ana, 20000);
      assert.equal(await bruno.locator('[data-testid=banner]').count(), 0);
      const all = [...live, ...missed];
      await eventually(async () => assert.deepEqual(await bodies(bruno), all), 10000, "the missed messages on Bruno's page");
      await eventually(async () => assert.deepEqual(await bodies(ana), all), 10000, "the messages on Ana's page");
      await eventually(async () => assert.equal(await connections(stack.b), 2), 5000, 'both pages on node B');
      await sleep(1000); // a duplicate or a late refetch would show by now
      assert.deepEqual(await bodies(bruno), all);
      assert.deepEqual(await bodies(ana), all);
      // The SDK recovered them: no page asked the backend for the history again.
      noRefetch('Bruno');
      noRefetch('Ana');
      // Bruno read them as they came: Ana sees "Read" under her last one.
      await expectText(ana, '[data-testid=receipt]', 'Read');
      await shot(bruno, '2-bruno-recovered-on-node-b');
    });

    await step('node A restarts and takes over, node B is killed: a message sent meanwhile is recovered, the next arrives live', async () => {
      await stack.a.start(); // same port, a new process: what it knows of the history is in Redis
      stack.api.switchTo(stack.a.port, { dropExisting: true });
      await stack.b.kill();
      await expectText(bruno, '[data-testid=banner]', 'Reconnecting', 10000);
      await sendAsAna(afterRestart[0]);
      await sleep(300);
      assert.deepEqual(await bodies(bruno), [...live, ...missed], 'Bruno is offline: nothing arrives');
      stack.ws.switchTo(stack.a.port);
      await waitConnected(bruno, 20000);
      await waitConnected(ana, 20000);
      const all = [...live, ...missed, afterRestart[0]];
      await eventually(async () => assert.deepEqual(await bodies(bruno), all), 10000, 'the message sent while node B was going down');
      await eventually(async () => assert.equal(await connections(stack.a), 2), 5000, 'both pages on node A again');
      // Ana, connected again, sends from her page: it arrives live, once on each side.
      await expectText(ana, '[data-testid=chat-status]', 'in this chat', 15000);
      await send(ana, afterRestart[1]);
      all.push(afterRestart[1]);
      await eventually(async () => assert.deepEqual(await bodies(bruno), all), 10000, 'the live message after the restart');
      await eventually(async () => assert.deepEqual(await bodies(ana), all), 10000, "Ana's page");
      await expectText(ana, '[data-testid=receipt]', 'Read');
      await sleep(1000);
      assert.deepEqual(await bodies(bruno), all);
      assert.deepEqual(await bodies(ana), all);
      noRefetch('Bruno');
      noRefetch('Ana');
      await shot(bruno, '3-bruno-after-node-a-restart');
      await shot(ana, '4-ana-after-node-a-restart');
    });

    assert.deepEqual(problems, [], 'no errors in the pages');
  } finally {
    await browser.close().catch(() => {});
    await stack.close();
  }
}

for (const app of ['vue', 'react']) {
  test(`${app} example: no message lost across node restarts (two nodes, history in Redis)`, { timeout: 150000 }, (t) =>
    scenario(t, app),
  );
}
