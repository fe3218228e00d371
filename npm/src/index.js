// Chorus browser SDK: the typed ESM face of the WebAssembly engine (sdk-wasm/, Rust).
//
// The engine owns the socket, the connection state machine (backoff with jitter, close codes,
// heartbeat, online/offline), subscriptions, authorization and presence members. This file keeps
// what is cheaper in JS: the app's listeners, Echo's event naming, each channel's history position
// (recovery of missed events after a reconnect) and the calls made before the wasm has loaded
// (they are queued, so `new Chorus(...)` can be used synchronously).
import wasmInit, { initSync, Client } from '../dist/chorus_sdk.js';

const VERSION = '0.1.0';
const NOTIFICATION = '.Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
const ENCRYPTED = 'private-encrypted-';
// NaCl secretbox for `private-encrypted-*` channels: a separate chunk, fetched on first use only.
let crypto;
const loadCrypto = () => (crypto ??= import('./crypto.js'));

let ready; // Promise of the wasm instance
let loaded = false;

/**
 * Loads the wasm engine. Optional: `new Chorus()` calls it. `input` may be a URL of
 * `chorus_sdk_bg.wasm`, a `Response`, bytes or a `WebAssembly.Module` (bytes and modules load
 * synchronously).
 */
export function init(input) {
  if (!ready) {
    if (input && (input instanceof ArrayBuffer || ArrayBuffer.isView(input) || input instanceof WebAssembly.Module)) {
      initSync({ module: input });
      loaded = true;
      ready = Promise.resolve();
    } else {
      ready = wasmInit(input ? { module_or_path: input } : undefined).then(() => {
        loaded = true;
      });
    }
  }
  return ready;
}

/** Echo's EventFormatter: leading `.` or `\` = verbatim, else `namespace.event` with `.` -> `\`. */
function format(event, namespace) {
  if (event[0] === '.' || event[0] === '\\') return event.slice(1);
  return (namespace ? namespace + '.' + event : event).replace(/\./g, '\\');
}

/** A small event emitter: `on`/`off` (and pusher-js's `bind`/`unbind`). */
class Emitter {
  constructor() {
    this._l = new Map();
  }
  on(event, cb) {
    let set = this._l.get(event);
    if (!set) this._l.set(event, (set = new Set()));
    set.add(cb);
    return this;
  }
  off(event, cb) {
    if (event === undefined) this._l.clear();
    else if (cb === undefined) this._l.delete(event);
    else this._l.get(event)?.delete(cb);
    return this;
  }
  bind(event, cb) {
    return this.on(event, cb);
  }
  unbind(event, cb) {
    return this.off(event, cb);
  }
  _fire(event, ...args) {
    const set = this._l.get(event);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(...args);
      } catch (e) {
        // An app callback must not break the engine's event delivery: report it asynchronously.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/** `chorus.connection`: the state (`initialized`, `connecting`, `connected`, `unavailable`,
 * `disconnected`, `failed`) and its events (`state_change`, each state's name, `error`,
 * `connecting_in`, `signin_success`). */
class Connection extends Emitter {
  constructor() {
    super();
    this.state = 'initialized';
    this.socket_id = undefined;
  }
}

/** A public channel (`chorus.channel(name)`). */
export class Channel extends Emitter {
  constructor(chorus, name) {
    super();
    this.chorus = chorus;
    this.name = name;
    this._all = new Set();
    chorus._call((c) => c.subscribe(name));
  }
  /** Listens for `event` (Echo naming: `.Name` verbatim, else `App.Events.Name` -> `App\Events\Name`). */
  listen(event, cb) {
    return this.on(format(event, this.chorus._ns), cb);
  }
  /** Listens for every event of the channel: `cb(eventName, data)` (Echo's name form). */
  listenToAll(cb) {
    this._all.add(cb);
    return this;
  }
  stopListening(event, cb) {
    return this.off(format(event, this.chorus._ns), cb);
  }
  stopListeningToAll(cb) {
    if (cb) this._all.delete(cb);
    else this._all.clear();
    return this;
  }
  /** Called after each successful subscription (again after every reconnect) with
   * `{ recovered }`: true when a resubscription got every event missed meanwhile. */
  subscribed(cb) {
    return this.on('pusher:subscription_succeeded', () => cb({ recovered: !!this._rec?.recovered }));
  }
  /** After a reconnect, the missed events were recovered: `{ recovered: true, replayed }` (they
   * follow, in order, to the `listen` callbacks). */
  recovered(cb) {
    return this.on('chorus:recovered', cb);
  }
  /** After a reconnect, the missed events could not be recovered (`{ recovered: false, replayed: 0,
   * reason }`, reason `expired`, `epoch_changed` or `unavailable`): refetch what the channel shows. */
  recoveryFailed(cb) {
    return this.on('chorus:recovery_failed', cb);
  }
  /** Called when subscribing fails, e.g. the auth endpoint refused: `{ type, error, status }`. */
  error(cb) {
    return this.on('pusher:subscription_error', cb);
  }
  /** Laravel notifications (`BroadcastNotificationCreated`). */
  notification(cb) {
    return this.listen(NOTIFICATION, cb);
  }
  stopListeningForNotification(cb) {
    return this.stopListening(NOTIFICATION, cb);
  }
  _dispatch(event, data, meta, frame) {
    if (event === 'pusher_internal:subscription_count') {
      event = 'pusher:subscription_count';
      this.subscriptionCount = data?.subscription_count;
    }
    // Chorus history: `position` is the newest `{ epoch, offset }` seen, sent back as `recover`
    // when the engine resubscribes after a reconnect.
    const p = frame?.position;
    const h = this.position;
    this._sid = this.chorus._socket;
    if (event === 'pusher:subscription_succeeded') {
      const r = (this._rec = frame?.recovery);
      // Recovered: the replayed events follow with their own positions. Otherwise the server's
      // current position (none: the channel keeps no history now).
      if (!r?.recovered) this.position = p;
      this._fire(event, data, meta);
      if (r) this._fire(r.recovered ? 'chorus:recovered' : 'chorus:recovery_failed', r);
      return;
    }
    if (p) {
      // At or before the held position: already delivered, never twice.
      if (h?.epoch === p.epoch && p.offset <= h.offset) return;
      this.position = p;
    }
    // listenToAll's callbacks first, as pusher-js calls its global ones.
    if (this._all.size && !event.startsWith('pusher:')) {
      const ns = (this.chorus._ns || '').replace(/\./g, '\\');
      const name = ns && event.startsWith(ns) ? event.slice(ns.length + 1) : '.' + event;
      for (const cb of [...this._all]) {
        try {
          cb(name, data);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
    this._fire(event, data, meta);
  }
}

/** A private channel (`chorus.private(name)` subscribes to `private-name`). */
export class PrivateChannel extends Channel {
  /** Sends `client-{event}` to the other subscribers (dropped while not subscribed); chains. */
  whisper(event, data) {
    this.trigger('client-' + event, data);
    return this;
  }
  /** pusher-js's `trigger`: sends a client event by its full name; false when not subscribed. */
  trigger(event, data) {
    return !!this.chorus._client?.trigger(this.name, event, data);
  }
  listenForWhisper(event, cb) {
    return this.listen('.client-' + event, cb);
  }
  stopListeningForWhisper(event, cb) {
    return this.stopListening('.client-' + event, cb);
  }
}

/** A presence channel (`chorus.join(name)` subscribes to `presence-name`). */
export class PresenceChannel extends PrivateChannel {
  /** Members' `user_info` when subscribed (again after every reconnect). */
  here(cb) {
    return this.on('pusher:subscription_succeeded', (members) => cb(members.map(info)));
  }
  /** This connection's own member `{ id, info }` once subscribed. */
  get me() {
    return this.members().find((m) => m.id === this._me);
  }
  _dispatch(event, data, meta, frame) {
    if (event === 'pusher:subscription_succeeded') this._me = meta;
    super._dispatch(event, data, meta, frame);
  }
  joining(cb) {
    return this.on('pusher:member_added', (m) => cb(info(m)));
  }
  leaving(cb) {
    return this.on('pusher:member_removed', (m) => cb(info(m)));
  }
  /** Current members as `{ id, info }`. */
  members() {
    return this.chorus._client ? this.chorus._client.members(this.name) : [];
  }
}

const info = (m) => m.info ?? { id: m.id };

/** An end-to-end encrypted channel (`chorus.encryptedPrivate(name)` subscribes to
 * `private-encrypted-name`): events are decrypted as pusher-js does (NaCl secretbox with the
 * `shared_secret` of the auth answer, authorized once more when a key no longer opens them). */
export class EncryptedChannel extends PrivateChannel {
  constructor(chorus, name) {
    super(chorus, name);
    this._in = []; // events waiting for the crypto chunk or a key, in arrival order
    loadCrypto().then(
      (c) => {
        this._open = c.open;
        this._drain();
      },
      () => {
        // The crypto file did not load: nothing here can be read (a later channel tries again).
        crypto = null;
        this._lost = true;
        for (const [event] of this._in.splice(0)) this._unread(event);
      },
    );
  }
  _unread(event) {
    this.chorus._error('DecryptionError', { channel: this.name, event });
  }
  _dispatch(event, data, meta, frame) {
    if (/^(pusher|chorus)[:_]/.test(event)) return super._dispatch(event, data, meta, frame);
    if (this._lost) return this._unread(event);
    this._in.push([event, data, meta, frame]);
    this._drain();
  }
  _drain() {
    while (this._open && this._key && !this._renew && this._in.length) {
      const [event, data, meta, frame] = this._in[0];
      let plain;
      try {
        plain = this._open(this._key, data);
      } catch {
        // Not opened by the key: maybe it changed, so ask for the current one once per key.
        if (this._retried !== this._key) {
          this._retried = this._key;
          this._renew = this.chorus._authorize(this.name).then((a) => {
            this._renew = null;
            if (a?.shared_secret) this._key = a.shared_secret;
            this._drain();
          });
          return;
        }
        this._in.shift();
        this._unread(event);
        continue;
      }
      this._in.shift();
      super._dispatch(event, plain, meta, frame);
    }
  }
}

/** The client: `new Chorus({ key, wsHost, wsPort, ... })` connects by itself. */
export class Chorus {
  constructor(options) {
    const o = (this.options = { ...options });
    this.connection = new Connection();
    this.user = new Emitter(); // events sent to the signed-in user (`sendToUser`)
    this.user.watchlist = new Emitter(); // `online` / `offline` of the user's watchlist: `{ user_ids }`
    this._ns = o.namespace === undefined ? 'App.Events' : o.namespace;
    this._channels = new Map();
    this._queue = [];
    this._client = null;
    const loc = globalThis.location;
    const tls = o.forceTLS ?? loc?.protocol === 'https:';
    const host = o.wsHost ?? loc?.hostname ?? '127.0.0.1';
    // The wss:// URL also serves when a server closes with 4000 ("SSL only"): the engine switches to it.
    const url = (scheme, port) =>
      scheme + host + ':' + port + (o.wsPath ?? '') + '/app/' + encodeURIComponent(o.key) + '?protocol=7&client=chorus-js&version=' + VERSION + '&flash=false';
    const tlsUrl = url('wss://', o.wssPort ?? o.wsPort ?? 443);
    this._opts = {
      url: tls ? tlsUrl : url('ws://', o.wsPort ?? 80),
      tlsUrl,
      // The headers are read at each request (`_authorize`), so that they can change.
      authEndpoint: o.channelAuthorization?.endpoint ?? o.authEndpoint ?? '/broadcasting/auth',
      userEndpoint: o.userAuthentication?.endpoint ?? '/broadcasting/user-auth',
      activityTimeout: o.activityTimeout,
      pongTimeout: o.pongTimeout,
      connectTimeout: o.connectTimeout,
      unavailableTimeout: o.unavailableTimeout,
      reconnectBaseDelay: o.reconnectBaseDelay,
      maxReconnectDelay: o.maxReconnectDelay,
    };
    const start = () => {
      this._client = new Client(this._opts, {
        emit: (ch, ev, data, extra, frame) => this._emit(ch, ev, data, extra, frame),
        // The position to recover from, with the socket the channel last heard from: events that
        // connection's own requests excluded (`toOthers()`) are not replayed to it.
        position: (ch) => {
          const c = this._channels.get(ch);
          return c?.position && { ...c.position, socket_id: c._sid };
        },
        post: (url, headers, body, tag) => {
          const form = new URLSearchParams(body);
          const name = form.get('channel_name');
          this._authorize(name, form.get('socket_id')).then((a) => {
            const ch = this._channels.get(name);
            // An encrypted channel needs its key: without one it is not subscribed.
            if (ch instanceof EncryptedChannel) a = a?.shared_secret ? ((ch._key = a.shared_secret), a) : a?.auth ? 200 : a;
            this._client.answer(tag, a);
            ch?._drain?.();
          });
        },
      });
      for (const f of this._queue.splice(0)) f(this._client);
    };
    this.connect();
    // Start after the current task even when the wasm is already there, so that listeners added
    // right after construction (`chorus.connection.on(...)`) see every state change.
    if (loaded) queueMicrotask(start);
    else
      init(o.wasm).then(start, (e) => {
        this.connection.state = 'failed';
        this.connection._fire('state_change', { previous: 'initialized', current: 'failed' });
        this.connection._fire('error', { type: 'WasmError', error: e });
      });
  }

  _call(f) {
    if (this._client) f(this._client);
    else this._queue.push(f);
  }

  /** Authorizes `channel` (`null`: signs the user in) for this socket: the app's handler
   * (`channelAuthorization.customHandler`, `authorizer`, `userAuthentication.customHandler`) or a
   * POST like pusher-js's. Resolves to the JSON answer or (failed) a number, the HTTP status. */
  _authorize(channel, socketId = this.socketId()) {
    const o = this.options;
    const user = channel === null;
    const a = user ? o.userAuthentication ?? {} : { ...o.auth, ...o.channelAuthorization };
    const params = { socket_id: socketId, ...(user ? {} : { channel_name: channel }), ...a.params, ...a.paramsProvider?.() };
    const handler =
      a.customHandler ??
      (!user && o.authorizer && ((p, cb) => o.authorizer({ name: channel }, o).authorize(p.socketId, cb)));
    if (handler)
      return new Promise((resolve) =>
        handler({ socketId, channelName: channel }, (err, data) => resolve(err ? err.status ?? 0 : data)),
      ).catch(() => 0);
    const meta = globalThis.document?.querySelector?.('meta[name="csrf-token"]');
    const csrf = o.csrfToken ?? globalThis.Laravel?.csrfToken ?? meta?.content;
    const h = a.headers;
    const f = o.fetch ?? globalThis.fetch;
    return f(user ? this._opts.userEndpoint : this._opts.authEndpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
        ...(csrf && { 'X-CSRF-TOKEN': csrf }),
        ...(o.bearerToken && { Authorization: 'Bearer ' + o.bearerToken }),
        ...(typeof h === 'function' ? h() : h),
        ...a.headersProvider?.(),
      },
      body: new URLSearchParams(params).toString(),
      credentials: 'same-origin',
    })
      .then((r) => (r.ok ? r.json() : r.status))
      .catch(() => 0);
  }

  _error(type, data) {
    this.connection._fire('error', { type, data });
  }

  _emit(channel, event, data, extra, frame) {
    if (channel === undefined || channel === null) {
      const conn = this.connection;
      if (event === 'state_change') {
        conn.state = extra;
        if (extra !== 'connected') conn.socket_id = undefined;
        conn._fire('state_change', { previous: data, current: extra });
        conn._fire(extra);
      } else {
        if (event === 'connected') this._socket = conn.socket_id = data;
        else if (event === 'watchlist') for (const e of data?.events ?? []) this.user.watchlist._fire(e.name, e);
        else conn._fire(event, data);
      }
      return;
    }
    if (channel.startsWith('#server-to-user-')) {
      if (!event.startsWith('pusher')) this.user._fire(event, data);
      return;
    }
    this._channels.get(channel)?._dispatch(event, data, extra, frame);
  }

  _get(name, Kind) {
    let ch = this._channels.get(name);
    if (!ch) this._channels.set(name, (ch = new Kind(this, name)));
    return ch;
  }

  /** A public channel. */
  channel(name) {
    return this._get(name, Channel);
  }
  /** The private channel `private-{name}`. */
  private(name) {
    return this._get('private-' + name, PrivateChannel);
  }
  /** The end-to-end encrypted channel `private-encrypted-{name}`. */
  encryptedPrivate(name) {
    return this._get(ENCRYPTED + name, EncryptedChannel);
  }
  /** The presence channel `presence-{name}`. */
  join(name) {
    return this._get('presence-' + name, PresenceChannel);
  }
  /** Leaves `name`, `private-name`, `private-encrypted-name` and `presence-name`. */
  leave(name) {
    for (const n of [name, 'private-' + name, ENCRYPTED + name, 'presence-' + name]) this.leaveChannel(n);
  }
  /** Leaves the channel with exactly this name. */
  leaveChannel(name) {
    if (this._channels.delete(name)) this._call((c) => c.unsubscribe(name));
  }
  leaveAllChannels() {
    for (const name of [...this._channels.keys()]) this.leaveChannel(name);
  }
  /** The socket id while connected (send it as `X-Socket-ID` for Laravel's `toOthers()`). */
  socketId() {
    return this._client?.socketId() ?? undefined;
  }
  /** Signs the user in through `userAuthentication.endpoint` (again after every reconnect). */
  signin() {
    this._call((c) => c.signin());
  }
  connect() {
    this._call((c) => c.connect());
  }
  disconnect() {
    this._call((c) => c.disconnect());
  }
}

export default Chorus;
