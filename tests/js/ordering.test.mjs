// Ordered delivery: 500 events published through the HTTP API reach 3
// subscribers complete and in order.

import assert from 'node:assert/strict';

import { Recorder, subscribed, useChorus } from './lib/harness.mjs';

const chorus = useChorus();

const TOTAL = 500;
const BATCH = 10;

chorus.test(`${TOTAL} events via triggerBatch reach 3 subscribers complete and in order`, { timeout: 90000 }, async () => {
  const clients = [chorus.pusher(), chorus.pusher(), chorus.pusher()];
  const recorders = [];
  for (const [i, c] of clients.entries()) {
    const ch = await subscribed(c, 'ordered');
    const rec = new Recorder(`subscriber ${i}`);
    ch.bind('seq', (d) => rec.fn(d.seq));
    recorders.push(rec);
  }

  for (let start = 0; start < TOTAL; start += BATCH) {
    const batch = [];
    for (let seq = start; seq < Math.min(start + BATCH, TOTAL); seq++) {
      batch.push({ channel: 'ordered', name: 'seq', data: { seq, pad: 'p'.repeat(64) } });
    }
    const res = await chorus.sdk.triggerBatch(batch);
    assert.equal(res.status, 200);
  }

  const expected = Array.from({ length: TOTAL }, (_, i) => i);
  for (const rec of recorders) {
    const got = await rec.waitFor(TOTAL, 30000);
    assert.equal(got.length, TOTAL, `${rec.name}: count`);
    assert.deepEqual(got, expected, `${rec.name}: events out of order or missing`);
  }
});

chorus.test(`${TOTAL} sequential triggers on two channels keep per-channel order for 3 subscribers`, { timeout: 90000 }, async () => {
  const clients = [chorus.pusher(), chorus.pusher(), chorus.pusher()];
  const recorders = [];
  for (const [i, c] of clients.entries()) {
    const rec = new Recorder(`subscriber ${i}`);
    for (const name of ['seq-a', 'seq-b']) {
      const ch = await subscribed(c, name);
      ch.bind('n', (d) => rec.fn(`${name}:${d.n}`));
    }
    recorders.push(rec);
  }
  // Alternate channels; triggers are awaited one by one. Only per-channel order is
  // asserted (Pusher does not promise an order across channels).
  const expected = [];
  for (let n = 0; n < TOTAL; n++) {
    const name = n % 2 ? 'seq-b' : 'seq-a';
    expected.push(`${name}:${n}`);
    await chorus.sdk.trigger(name, 'n', { n });
  }
  for (const rec of recorders) {
    const got = await rec.waitFor(TOTAL, 30000);
    for (const name of ['seq-a', 'seq-b']) {
      const mine = (list) => list.filter((e) => e.startsWith(`${name}:`));
      assert.deepEqual(mine(got), mine(expected), `${rec.name} on ${name}: events out of order or missing`);
    }
    assert.equal(got.length, TOTAL);
  }
});
