// Types shared by `chorus-sdk/vue` and `chorus-sdk/react` (the same as @laravel/echo-vue/-react 2.5's).
import type { Channel, PresenceChannel, PrivateChannel } from './index.js';
import type { ChorusEcho, ChorusEchoOptions } from './echo.js';

export type { ConnectionStatus } from './echo.js';

declare global {
  /** Extend in your own .d.ts to type event payloads by name (as with @laravel/echo-vue/-react):
   * `interface Events { OrderShipped: { id: number } }`. */
  interface Events {}
}

export type EventName = keyof Events & string;
export type InferEventPayload<TEvent extends string> = TEvent extends keyof Events ? Events[TEvent] : unknown;

export type Visibility = 'private' | 'public' | 'presence';
export type ChannelReturnType<V extends Visibility> = V extends 'presence' ? PresenceChannel : V extends 'private' ? PrivateChannel : Channel;

export type BroadcastNotification<TPayload> = TPayload & { id: string; type: string };

export type ModelPayload<T> = { model: T; connection: string | null; queue: string | null; afterCommit: boolean };
type ModelName<T extends string> = T extends `${infer _}.${infer U}` ? ModelName<U> : T;
type ModelEvent =
  | 'Retrieved' | 'Creating' | 'Created' | 'Updating' | 'Updated' | 'Saving' | 'Saved' | 'Deleting' | 'Deleted'
  | 'Trashed' | 'ForceDeleting' | 'ForceDeleted' | 'Restoring' | 'Restored' | 'Replicating';
export type ModelEvents<T extends string> = `.${ModelName<T>}${ModelEvent}` | `${ModelName<T>}${ModelEvent}`;

/** Same options object as @laravel/echo-vue/-react's (`broadcaster` is optional and ignored). */
export function configureEcho(config: ChorusEchoOptions): void;
export function echo(): ChorusEcho;
export function echoIsConfigured(): boolean;
