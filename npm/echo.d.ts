// Types of `chorus-sdk/echo`: a laravel-echo 2.x connector on the Chorus engine.
import type { Channel, Chorus, ChorusOptions, EncryptedChannel, PresenceChannel, PrivateChannel } from './index.js';

/** laravel-echo's five statuses. */
export type ConnectionStatus = 'connected' | 'disconnected' | 'connecting' | 'reconnecting' | 'failed';

/** Echo's options: the SDK's, plus what Echo itself reads. `key` is required by the SDK. */
export type ChorusEchoOptions = ChorusOptions & {
  broadcaster?: unknown;
  /** Use this client instead of creating one. */
  client?: Chorus;
  /** Do not add `X-Socket-ID` to axios / jQuery / Turbo / vue-resource requests. */
  withoutInterceptors?: boolean;
  namespace?: string | false | null;
  csrfToken?: string | null;
  bearerToken?: string | null;
  host?: string | null;
  [key: string]: unknown;
};

/** `new Echo({ broadcaster: ChorusConnector, key, wsHost, wsPort, forceTLS, authEndpoint })`. */
export class ChorusConnector {
  constructor(options: ChorusEchoOptions);
  options: ChorusEchoOptions;
  /** The SDK client behind the connector. */
  readonly chorus: Chorus;
  /** The channels in use, by full name. */
  readonly channels: Record<string, Channel>;
  connect(): void;
  listen(name: string, event: string, callback: (data: any) => void): Channel;
  channel(name: string): Channel;
  privateChannel(name: string): PrivateChannel;
  encryptedPrivateChannel(name: string): EncryptedChannel;
  presenceChannel(name: string): PresenceChannel;
  leave(name: string): void;
  leaveChannel(name: string): void;
  socketId(): string | undefined;
  signin(): void;
  connectionStatus(): ConnectionStatus;
  /** Returns the function that stops the callbacks. */
  onConnectionChange(callback: (status: ConnectionStatus) => void): () => void;
  disconnect(): void;
}

/** laravel-echo's `Echo` API on a `ChorusConnector`, for apps without laravel-echo. */
export class ChorusEcho {
  constructor(options: ChorusEchoOptions);
  options: ChorusEchoOptions;
  connector: ChorusConnector;
  connect(): void;
  disconnect(): void;
  channel(name: string): Channel;
  private(name: string): PrivateChannel;
  encryptedPrivate(name: string): EncryptedChannel;
  join(name: string): PresenceChannel;
  listen(name: string, event: string, callback: (data: any) => void): Channel;
  leave(name: string): void;
  leaveChannel(name: string): void;
  leaveAllChannels(): void;
  socketId(): string | undefined;
  connectionStatus(): ConnectionStatus;
  registerInterceptors(): void;
}
