// A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that checks every request
// with the official `pusher` SDK's webhook() validation (what a Laravel or Node backend runs),
// as Pusher's documentation tells backends to.

import http from 'node:http';

import { APP, HOST, PusherServer, waitUntil } from './harness.mjs';

/**
 * Starts the receiver. `fail(n)` decides, for the n-th request (from 1), to answer 500 instead.
 * Returns { url, events, batches, invalid, requests, waitFor(predicate, what), close() }:
 * `events` holds every valid request's events in arrival order.
 */
export async function startReceiver({ secret = APP.secret, fail = () => false } = {}) {
  const validator = new PusherServer({ appId: APP.id, key: APP.key, secret });
  const rx = { events: [], batches: [], invalid: [], requests: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      rx.requests += 1;
      if (fail(rx.requests)) {
        res.writeHead(500).end();
        return;
      }
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const webhook = validator.webhook({ headers: req.headers, rawBody });
      if (!webhook.isValid()) {
        rx.invalid.push({ headers: req.headers, rawBody });
        res.writeHead(401).end();
        return;
      }
      const body = webhook.getData();
      rx.batches.push(body);
      rx.events.push(...webhook.getEvents());
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return {

    get events() {
      return rx.events;
    },
    get batches() {
      return rx.batches;
    },
    get invalid() {
      return rx.invalid;
    },
    get requests() {
      return rx.requests;
    },
    url: `http://${HOST}:${server.address().port}/pusher/webhook`,
    /** Events matching `name` (and `channel`, when given). */
    named(name, channel) {
      return rx.events.filter((e) => e.name === name && (channel === undefined || e.channel === channel));
    },
    waitFor(predicate, what, timeout = 8000) {
      return waitUntil(() => predicate(rx.events), what, { timeout });
    },
    clear() {
      rx.events.length = 0;
      rx.batches.length = 0;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
