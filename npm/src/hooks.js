// What `chorus-sdk/vue` and `chorus-sdk/react` share (bundled into each): the configured Echo,
// the reference-counted channel registry, and the naming rules of @laravel/echo-vue/-react 2.5.
import { ChorusEcho } from 'chorus-sdk/echo';

let instance = null;
let config = null;
/** The channels the hooks use, by full name: `{ count, connection }`. */
const channels = {};

// Vite replaces `import.meta.env`; elsewhere it is undefined.
const env = import.meta.env ?? {};
const pick = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** The options @laravel/echo-* take from VITE_* variables: Pusher's with `broadcaster: 'pusher'`,
 * else Reverb's. Only the variables that are set. */
function defaults(broadcaster) {
  const [p, scheme] = broadcaster === 'pusher' ? ['VITE_PUSHER_', undefined] : ['VITE_REVERB_', env.VITE_REVERB_SCHEME];
  const host = env[p + 'HOST'];
  const port = env[p + 'PORT'];
  return pick({
    key: env[p + 'APP_KEY'],
    wsHost: host,
    wsPort: port,
    wssPort: port,
    forceTLS: scheme === undefined ? undefined : scheme === 'https',
  });
}

export const echoIsConfigured = () => config !== null;

/** Same options object as @laravel/echo-vue/-react's `configureEcho` (`broadcaster` may be left
 * out: it is always Chorus). A second call replaces the configuration for the next `echo()`; the
 * previous connection is closed and its channels forgotten (Laravel's packages keep both open). */
export function configureEcho(options) {
  config = { ...defaults(options.broadcaster), ...options };
  instance?.disconnect();
  instance = null;
  for (const id in channels) delete channels[id];
}

/** The Echo-like instance (created on first use). */
export function echo() {
  if (instance) return instance;
  if (!config) throw new Error('Echo has not been configured. Please call `configureEcho()` with your configuration options before using Echo.');
  return (instance = new ChorusEcho(config));
}

export const toArray = (x) => (Array.isArray(x) ? x : [x]);

/** A channel as the hooks name it: `id` is the full name, the registry's key. */
export const spec = (name, visibility) => ({
  name,
  id: visibility === 'private' || visibility === 'presence' ? visibility + '-' + name : name,
  visibility,
});

/** The channel for `ch`, subscribed by the first user; every call must be paired with `release`. */
export function resolve(ch) {
  const known = channels[ch.id];
  if (known) {
    known.count += 1;
    return known.connection;
  }
  const e = echo();
  const connection = ch.visibility === 'presence' ? e.join(ch.name) : ch.visibility === 'private' ? e.private(ch.name) : e.channel(ch.name);
  channels[ch.id] = { count: 1, connection };
  return connection;
}

/** Drops one use of `ch`; the last one leaves it (`all`: also its other kinds, Echo's `leave`). */
export function release(ch, all = false) {
  const known = channels[ch.id];
  if (!known || --known.count > 0) return;
  delete channels[ch.id];
  if (all) echo().leave(ch.name);
  else echo().leaveChannel(ch.id);
}

/** Notification types to accept: each given with `.` and with `\` separators. */
export const notificationTypes = (event) =>
  toArray(event).flatMap((e) => (e.includes('.') ? [e, e.replace(/\./g, '\\')] : [e, e.replace(/\\/g, '.')]));

/** Model events are broadcast under their short names: `.PostUpdated`. */
export const modelEvents = (event) => toArray(event).map((e) => (e.startsWith('.') ? e : '.' + e));

/** Calls `f(memberInfos)` whenever the presence channel's members change; returns the undo. */
export function watchMembers(channel, f) {
  const update = () => f(channel.members().map((m) => m.info ?? { id: m.id }));
  const events = ['pusher:subscription_succeeded', 'pusher:member_added', 'pusher:member_removed'];
  for (const e of events) channel.on(e, update);
  update();
  return () => {
    for (const e of events) channel.off(e, update);
  };
}

/** Calls `f(outcome)` with each recovery outcome of `channel` after a reconnect (`{ recovered:
 * true, replayed }` or `{ recovered: false, reason }`); returns the undo. */
export function watchRecovery(channel, f) {
  const events = ['chorus:recovered', 'chorus:recovery_failed'];
  for (const e of events) channel.on(e, f);
  return () => {
    for (const e of events) channel.off(e, f);
  };
}

/** Calls `f(status)` on every connection status change; returns the undo. */
export const onStatus = (f) => echo().connector.onConnectionChange(f);
