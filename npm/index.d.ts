// Types of the Chorus browser SDK (chorus-sdk).

/** Connection states, as pusher-js names them. */
export type ConnectionState =
  | 'initialized'
  | 'connecting'
  | 'connected'
  | 'unavailable'
  | 'disconnected'
  | 'failed';

export interface StateChange {
  previous: ConnectionState;
  current: ConnectionState;
}

/** `pusher:subscription_error` payload; `type: 'AuthError'` when the auth endpoint refused. */
export interface SubscriptionError {
  type: 'AuthError' | string;
  error: string;
  /** HTTP status of the auth endpoint's answer (0: the request failed). */
  status: number;
}

/** Where an event stands in its channel's history (Chorus servers with history on): `offset` counts
 * the channel's events within one `epoch`; a new epoch means the history started over. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** After a reconnect, every missed event was recovered; they follow, in order, to the channel's
 * `listen` callbacks (each exactly once). */
export interface Recovered {
  recovered: true;
  /** How many missed events follow. */
  replayed: number;
}

/** Why missed events could not be recovered: `expired` (no longer kept: outage longer than the
 * server's `history_size`/`history_ttl`), `epoch_changed` (the history started over, e.g. a server
 * restart without Redis), `unavailable` (the channel keeps no history, or Redis is down). */
export type RecoveryFailedReason = 'expired' | 'epoch_changed' | 'unavailable';

/** After a reconnect, the missed events could not be recovered: the channel is subscribed again at
 * the current position and the app should refetch what it shows. */
export interface RecoveryFailed {
  recovered: false;
  replayed: 0;
  reason: RecoveryFailedReason;
}

/** Outcome of a recovery: `chorus:recovered` or `chorus:recovery_failed` on the channel. */
export type Recovery = Recovered | RecoveryFailed;

/** Passed to `subscribed` callbacks. */
export interface SubscribedInfo {
  /** True when this resubscription (after a reconnect) recovered every event missed meanwhile;
   * false on a first subscription, when recovery failed or the server keeps no history. */
  recovered: boolean;
}

/** Errors on `chorus.connection.on('error', ...)`. */
export type ChorusError =
  /** The server sent `pusher:error` or closed with a 4000-4999 code. */
  | { type: 'PusherError'; data: { code?: number; message: string } }
  /** A channel authorization or user sign-in was refused. */
  | { type: 'AuthError'; data: SubscriptionError & { channel?: string } }
  /** The WebSocket URL was invalid. */
  | { type: 'WebSocketError'; data: unknown }
  /** The wasm could not be loaded. */
  | { type: 'WasmError'; error: unknown }
  /** An event of an encrypted channel could not be decrypted, even with a fresh key: dropped. */
  | { type: 'DecryptionError'; data: { channel: string; event: string } };

export interface ConnectionEvents {
  state_change: StateChange;
  initialized: void;
  connecting: void;
  connected: void;
  unavailable: void;
  disconnected: void;
  failed: void;
  error: ChorusError;
  /** Milliseconds until the next connection attempt. */
  connecting_in: number;
  /** The user data the auth endpoint returned for `signin()`. */
  signin_success: { id: string; [key: string]: unknown };
}

export interface Connection {
  readonly state: ConnectionState;
  /** The socket id while connected. */
  readonly socket_id: string | undefined;
  on<E extends keyof ConnectionEvents>(event: E, cb: (data: ConnectionEvents[E]) => void): this;
  off<E extends keyof ConnectionEvents>(event?: E, cb?: (data: ConnectionEvents[E]) => void): this;
  bind<E extends keyof ConnectionEvents>(event: E, cb: (data: ConnectionEvents[E]) => void): this;
  unbind<E extends keyof ConnectionEvents>(event?: E, cb?: (data: ConnectionEvents[E]) => void): this;
}

/** Events sent to the signed-in user (the backend's `sendToUser`). */
export interface UserEvents {
  on<T = any>(event: string, cb: (data: T) => void): this;
  off(event?: string, cb?: (data: any) => void): this;
  bind<T = any>(event: string, cb: (data: T) => void): this;
  unbind(event?: string, cb?: (data: any) => void): this;
}

/** `online` / `offline` of the signed-in user's watchlist (`watchlist` in the user data). */
export interface Watchlist {
  on(event: 'online' | 'offline', cb: (e: { name: 'online' | 'offline'; user_ids: string[] }) => void): this;
  off(event?: 'online' | 'offline', cb?: (e: { name: string; user_ids: string[] }) => void): this;
  bind(event: 'online' | 'offline', cb: (e: { name: 'online' | 'offline'; user_ids: string[] }) => void): this;
  unbind(event?: 'online' | 'offline', cb?: (e: { name: string; user_ids: string[] }) => void): this;
}

/** Metadata of client events on presence channels. */
export interface EventMeta {
  user_id?: string;
}

export interface ChorusOptions {
  /** The app key. */
  key: string;
  /** Server host; default `location.hostname`. */
  wsHost?: string;
  /** Port for ws:// (default 80). */
  wsPort?: number;
  /** Port for wss:// (default `wsPort`, else 443); also where the client goes after a 4000 close ("SSL only"). */
  wssPort?: number;
  /** Use wss://; default: whether the page is served over https. */
  forceTLS?: boolean;
  /** Path prefix before `/app/{key}` (pusher-js's `wsPath`), e.g. behind a proxy. */
  wsPath?: string;
  /** Channel authorization endpoint; default `/broadcasting/auth`. */
  authEndpoint?: string;
  /** Headers (an object read at each request, so it may be changed, or a function) and form
   * params for `authEndpoint`. */
  auth?: { headers?: Record<string, string> | (() => Record<string, string>); params?: Record<string, string> };
  /** pusher-js 8's form of the same (wins over `authEndpoint` / `auth`). */
  channelAuthorization?: AuthOptions;
  /** User authentication for `signin()`; endpoint default `/broadcasting/user-auth`. */
  userAuthentication?: AuthOptions;
  /** Laravel Echo's / pusher-js's legacy custom authorizer. */
  authorizer?: (
    channel: { name: string },
    options: ChorusOptions,
  ) => { authorize: (socketId: string, callback: (error: (Error & { status?: number }) | null, data: AuthData | null) => void) => void };
  /** Sent as `X-CSRF-TOKEN` to the auth endpoints; default `window.Laravel.csrfToken`, else the
   * page's `<meta name="csrf-token">` (read at each request). */
  csrfToken?: string;
  /** Sent as `Authorization: Bearer ...` to the auth endpoints. */
  bearerToken?: string;
  /** Echo's event namespace; default `App.Events` (`null` or `''`: none). */
  namespace?: string | null;
  /** Upper bound (ms) of the idle time before a ping; the server's `activity_timeout` applies when smaller. Default 120000. */
  activityTimeout?: number;
  /** How long (ms) to wait for a pong before dropping the connection. Default 10000. */
  pongTimeout?: number;
  /** How long (ms) a connection attempt may take until the server's handshake. Default 10000. */
  connectTimeout?: number;
  /** After this long (ms) without a connection the state becomes `unavailable`. Default 10000. */
  unavailableTimeout?: number;
  /** First backoff step (ms); steps grow by 1.6x, each delay drawn at random below the step. Default 250. */
  reconnectBaseDelay?: number;
  /** Cap of the backoff (ms): no wait before a reconnect attempt is longer, however many failed. Default 10000. */
  maxReconnectDelay?: number;
  /** Where to load the wasm from, or its bytes / a compiled module. Default: next to the JS file. */
  wasm?: string | URL | Request | Response | BufferSource | WebAssembly.Module;
  /** The `fetch` used for auth requests; default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

export class Channel {
  readonly name: string;
  /** The newest history position seen on this channel (`undefined` without server history); sent
   * back when the SDK resubscribes after a reconnect, so that the server replays what was missed. */
  readonly position: StreamPosition | undefined;
  /** Echo naming: `.Name` is used verbatim, `Name` becomes `App\Events\Name` (with the namespace). */
  listen<T = any>(event: string, cb: (data: T, meta?: EventMeta) => void): this;
  listenToAll(cb: (event: string, data: any) => void): this;
  stopListening(event: string, cb?: (data: any, meta?: EventMeta) => void): this;
  stopListeningToAll(cb?: (event: string, data: any) => void): this;
  /** Called after every successful subscription (also after reconnects), with `{ recovered }`. */
  subscribed(cb: (info: SubscribedInfo) => void): this;
  /** After a reconnect: every missed event was recovered (they follow to the `listen` callbacks). */
  recovered(cb: (recovery: Recovered) => void): this;
  /** After a reconnect: missed events could not be recovered; refetch (see `RecoveryFailedReason`). */
  recoveryFailed(cb: (recovery: RecoveryFailed) => void): this;
  /** Called when the subscription fails (e.g. the auth endpoint answered 403). */
  error(cb: (error: SubscriptionError) => void): this;
  /** Laravel notifications (`BroadcastNotificationCreated`). */
  notification<T = any>(cb: (notification: T) => void): this;
  stopListeningForNotification(cb?: (notification: any) => void): this;
  /** Subscribers of the channel, cluster-wide, when the app has `enable_subscription_count`
   * (`pusher:subscription_count` events update it). */
  readonly subscriptionCount: number | undefined;
  /** Subscribers of the channel changed (apps with `enable_subscription_count`). */
  on(event: 'pusher:subscription_count', cb: (data: { subscription_count: number }) => void): this;
  /** A cache channel had no cached event to send on subscription. */
  on(event: 'pusher:cache_miss', cb: () => void): this;
  /** Raw events, names unformatted (`pusher:subscription_succeeded`, `chorus:recovered`,
   * `chorus:recovery_failed`, `App\\Events\\X`, ...). */
  on<T = any>(event: string, cb: (data: T, meta?: EventMeta) => void): this;
  off(event?: string, cb?: (data: any, meta?: EventMeta) => void): this;
  bind<T = any>(event: string, cb: (data: T, meta?: EventMeta) => void): this;
  unbind(event?: string, cb?: (data: any, meta?: EventMeta) => void): this;
}

export class PrivateChannel extends Channel {
  /** Sends `client-{event}` to the other subscribers (not sent while not subscribed); chains. */
  whisper(event: string, data: unknown): this;
  /** pusher-js's `trigger`: a client event by its full name (`client-...`); false when not sent
   * (not subscribed yet). */
  trigger(event: string, data: unknown): boolean;
  listenForWhisper<T = any>(event: string, cb: (data: T, meta?: EventMeta) => void): this;
  stopListeningForWhisper(event: string, cb?: (data: any, meta?: EventMeta) => void): this;
}

export interface Member<I = any> {
  id: string;
  info: I;
}

export class PresenceChannel<I = any> extends PrivateChannel {
  /** The members' `user_info` on every successful subscription. */
  here(cb: (members: I[]) => void): this;
  joining(cb: (member: I) => void): this;
  leaving(cb: (member: I) => void): this;
  /** Current members. */
  members(): Member<I>[];
  /** This connection's own member, once subscribed. */
  readonly me: Member<I> | undefined;
}

/** `private-encrypted-*`: events are decrypted with the `shared_secret` the auth endpoint returns
 * (the `pusher` server SDKs' `encryptionMasterKeyBase64`). Undecryptable events are dropped and
 * reported as `{ type: 'DecryptionError' }` on `connection`. */
export class EncryptedChannel extends PrivateChannel {}

/** What a channel authorization (or user authentication) answers. */
export interface AuthData {
  auth: string;
  channel_data?: string;
  shared_secret?: string;
  user_data?: string;
}

/** pusher-js's `customHandler`: authorize however the app likes, then call `callback`. */
export type AuthHandler = (
  params: { socketId: string; channelName: string | null },
  callback: (error: (Error & { status?: number }) | null, data: AuthData | null) => void,
) => void;

/** How channels are authorized (pusher-js 8's `channelAuthorization`; also `userAuthentication`). */
export interface AuthOptions {
  endpoint?: string;
  headers?: Record<string, string> | (() => Record<string, string>);
  /** Called at every request: headers that change (a refreshed token). */
  headersProvider?: () => Record<string, string>;
  /** More form fields for the request. */
  params?: Record<string, string>;
  paramsProvider?: () => Record<string, string>;
  customHandler?: AuthHandler;
}

export class Chorus {
  /** Connects by itself; `chorus.connection.on(...)` right after construction sees every state change. */
  constructor(options: ChorusOptions);
  readonly options: ChorusOptions;
  readonly connection: Connection;
  /** Events the backend sends to the signed-in user; `user.watchlist` says when the users of the
   * signed-in user's watchlist come online / go offline. */
  readonly user: UserEvents & { readonly watchlist: Watchlist };
  /** A public channel. */
  channel(name: string): Channel;
  /** The private channel `private-{name}`. */
  private(name: string): PrivateChannel;
  /** The end-to-end encrypted channel `private-encrypted-{name}` (its crypto loads on first use). */
  encryptedPrivate(name: string): EncryptedChannel;
  /** The presence channel `presence-{name}`. */
  join<I = any>(name: string): PresenceChannel<I>;
  /** Leaves `name`, `private-name`, `private-encrypted-name` and `presence-name`. */
  leave(name: string): void;
  /** Leaves the channel with exactly this name. */
  leaveChannel(name: string): void;
  leaveAllChannels(): void;
  /** The socket id while connected (for `X-Socket-ID` / Laravel's `toOthers()`). */
  socketId(): string | undefined;
  /** Signs the user in through `userAuthentication.endpoint` (again after every reconnect). */
  signin(): void;
  connect(): void;
  disconnect(): void;
}

/** Loads the wasm engine ahead of time (optional; `new Chorus()` does it). */
export function init(input?: ChorusOptions['wasm']): Promise<void>;

export default Chorus;
