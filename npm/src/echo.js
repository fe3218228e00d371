// `chorus-sdk/echo`: laravel-echo 2.x on the Chorus engine, and an Echo of our own for the
// framework hooks (`chorus-sdk/vue`, `chorus-sdk/react`) that need no laravel-echo.
//
//   new Echo({ broadcaster: ChorusConnector, key, wsHost, wsPort, forceTLS: false, authEndpoint })
//
// Echo calls `new broadcaster(options)` and talks to the connector only through the methods
// below (laravel-echo's `Connector` contract); the channels it hands out are the SDK's own,
// which already speak Echo's channel API (listen with namespaces, whisper, here/joining/leaving,
// notification...). pusher-js is not used.
import { Chorus } from 'chorus-sdk';

/** Echo's five connection statuses from the SDK's six states. The SDK keeps retrying while
 * `unavailable`, so that is `reconnecting` (or `connecting` before a first connection), not
 * `failed` as Echo's pusher connector says. */
function status(state, wasConnected) {
  if (state === 'connected' || state === 'failed') return state;
  if (state === 'disconnected') return 'disconnected';
  return wasConnected ? 'reconnecting' : 'connecting';
}

/** A connector for laravel-echo 2.x: `new Echo({ broadcaster: ChorusConnector, ... })`. */
export class ChorusConnector {
  constructor(options) {
    this.options = {
      auth: { headers: {} },
      authEndpoint: '/broadcasting/auth',
      userAuthentication: { endpoint: '/broadcasting/user-auth', headers: {} },
      csrfToken: null,
      bearerToken: null,
      host: null,
      key: null,
      namespace: 'App.Events',
      ...options,
    };
    this.connect();
  }

  /** The SDK client behind the connector (an existing one may be passed as `client`). */
  connect() {
    const o = this.options;
    const c = (this.chorus = o.client ?? new Chorus({ ...o, csrfToken: o.csrfToken ?? undefined, bearerToken: o.bearerToken ?? undefined }));
    this._was = c.connection.state === 'connected';
    c.connection.on('connected', () => (this._was = true));
  }

  /** Echo's `leaveAllChannels()` walks these names. */
  get channels() {
    return Object.fromEntries(this.chorus._channels);
  }

  listen(name, event, callback) {
    return this.channel(name).listen(event, callback);
  }
  channel(name) {
    return this.chorus.channel(name);
  }
  privateChannel(name) {
    return this.chorus.private(name);
  }
  encryptedPrivateChannel(name) {
    return this.chorus.encryptedPrivate(name);
  }
  presenceChannel(name) {
    return this.chorus.join(name);
  }
  leave(name) {
    this.chorus.leave(name);
  }
  leaveChannel(name) {
    this.chorus.leaveChannel(name);
  }
  socketId() {
    return this.chorus.socketId();
  }
  signin() {
    this.chorus.signin();
  }

  /** `connected`, `connecting`, `reconnecting`, `disconnected` or `failed`. */
  connectionStatus() {
    return status(this.chorus.connection.state, this._was);
  }

  /** Calls `callback(status)` on every change; returns the function that stops it. */
  onConnectionChange(callback) {
    let last = this.connectionStatus();
    const f = () => {
      const now = this.connectionStatus();
      if (now !== last) callback((last = now));
    };
    this.chorus.connection.on('state_change', f);
    return () => this.chorus.connection.off('state_change', f);
  }

  disconnect() {
    this._was = false;
    this.chorus.disconnect();
  }
}

/**
 * The part of laravel-echo's `Echo` that apps and the hooks use, on a `ChorusConnector`, for apps
 * without laravel-echo. Registers the same `X-Socket-ID` interceptors (axios, jQuery, Turbo,
 * vue-resource) unless `withoutInterceptors`.
 */
export class ChorusEcho {
  constructor(options) {
    this.options = options;
    this.connect();
    if (!options.withoutInterceptors) this.registerInterceptors();
  }
  connect() {
    this.connector = new ChorusConnector(this.options);
  }
  disconnect() {
    this.connector.disconnect();
  }
  channel(name) {
    return this.connector.channel(name);
  }
  private(name) {
    return this.connector.privateChannel(name);
  }
  encryptedPrivate(name) {
    return this.connector.encryptedPrivateChannel(name);
  }
  join(name) {
    return this.connector.presenceChannel(name);
  }
  listen(name, event, callback) {
    return this.connector.listen(name, event, callback);
  }
  leave(name) {
    this.connector.leave(name);
  }
  leaveChannel(name) {
    this.connector.leaveChannel(name);
  }
  leaveAllChannels() {
    for (const name in this.connector.channels) this.leaveChannel(name);
  }
  socketId() {
    return this.connector.socketId();
  }
  connectionStatus() {
    return this.connector.connectionStatus();
  }
  registerInterceptors() {
    const g = globalThis;
    const id = () => this.socketId();
    g.Vue?.http?.interceptors.push((request, next) => {
      if (id()) request.headers.set('X-Socket-ID', id());
      next();
    });
    if (typeof g.axios === 'function')
      g.axios.interceptors.request.use((config) => {
        if (id()) config.headers['X-Socket-Id'] = id();
        return config;
      });
    if (typeof g.jQuery?.ajax !== 'undefined')
      g.jQuery.ajaxPrefilter((_o, _oo, xhr) => {
        if (id()) xhr.setRequestHeader('X-Socket-Id', id());
      });
    if (typeof g.Turbo === 'object')
      g.document?.addEventListener('turbo:before-fetch-request', (e) => {
        e.detail.fetchOptions.headers['X-Socket-Id'] = id();
      });
  }
}
