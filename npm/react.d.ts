// Types of `chorus-sdk/react`: @laravel/echo-react 2.5's hooks on the Chorus client.
import type { DependencyList } from 'react';
import type { Recovery } from './index.js';
import type { BroadcastNotification, ChannelReturnType, ConnectionStatus, EventName, InferEventPayload, ModelEvents, ModelPayload, Visibility } from './hooks.js';

export * from './hooks.js';

type Result<V extends Visibility> = {
  leaveChannel: (leaveAll?: boolean) => void;
  leave: () => void;
  stopListening: () => void;
  listen: () => void;
  /** Extra: the outcome of the last reconnect's recovery of missed events on this channel. */
  recovery: Recovery | null;
  channel: () => ChannelReturnType<V> | null;
};
type ChannelResult<V extends Visibility> = Omit<Result<V>, 'stopListening' | 'listen' | 'recovery'>;
/** Extra: the presence members' `user_info`, kept current. */
type WithMembers<R, I = any> = R & { members: I[] };

export function useEcho<TEvent extends EventName = EventName, V extends Visibility = 'private'>(
  channelName: string,
  event: TEvent | TEvent[],
  callback: (payload: InferEventPayload<TEvent>) => void,
  dependencies?: DependencyList,
  visibility?: V,
): Result<V>;
export function useEcho<TPayload, V extends Visibility = 'private'>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
  visibility?: V,
): Result<V>;
export function useEchoNotification<TPayload>(
  channelName: string,
  callback?: (payload: BroadcastNotification<TPayload>) => void,
  event?: string | string[],
  dependencies?: DependencyList,
): Result<'private'>;
export function useEchoPresence<TPayload, I = any>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
): WithMembers<Result<'presence'>, I>;
export function useEchoPublic<TPayload>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
): Result<'public'>;
export function useEchoModel<TPayload, TModel extends string>(
  model: TModel,
  identifier: string | number,
  event?: ModelEvents<TModel> | ModelEvents<TModel>[],
  callback?: (payload: ModelPayload<TPayload>) => void,
  dependencies?: DependencyList,
): Result<'private'>;
export function useChannel<V extends Visibility = 'private'>(channelName: string, visibility?: V): ChannelResult<V>;
export function usePresenceChannel<I = any>(channelName: string): WithMembers<ChannelResult<'presence'>, I>;
export function usePublicChannel(channelName: string): ChannelResult<'public'>;
export function useConnectionStatus(): ConnectionStatus;
export function useSocketId(): string | undefined;
