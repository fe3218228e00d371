// `chorus-sdk/vue`: the composables of @laravel/echo-vue 2.5 (same names, arguments and results)
// on the Chorus client, without laravel-echo or pusher-js. Channels are reference-counted across
// components: the last component to unmount leaves the channel. Extra: presence `members`.
import { onMounted, onUnmounted, ref, watch } from 'vue';
import { echo, modelEvents, notificationTypes, onStatus, release, resolve, spec, toArray, watchMembers, watchRecovery } from './hooks.js';

export { configureEcho, echo, echoIsConfigured } from './hooks.js';

export function useEcho(channelName, event = [], callback = () => {}, dependencies = [], visibility = 'private') {
  const channel = spec(channelName, visibility);
  const subscription = resolve(channel);
  const events = toArray(event);
  const current = ref(callback);
  // One stable listener that calls the current callback: rebinding never leaves a stale one. All
  // arguments pass through, as when Echo calls the callback itself (client events' metadata).
  const handler = (...args) => current.value(...args);
  let listening = false;
  const listen = () => {
    if (listening) return;
    for (const e of events) subscription.listen(e, handler);
    listening = true;
  };
  const stopListening = () => {
    if (!listening) return;
    for (const e of events) subscription.stopListening(e, handler);
    listening = false;
  };
  let left = false;
  const tearDown = (leaveAll = false) => {
    stopListening();
    if (!left) release(channel, leaveAll);
    left = true;
  };
  const recovery = ref(null);
  let unwatch;
  onMounted(() => {
    listen();
    unwatch = watchRecovery(subscription, (r) => (recovery.value = r));
  });
  onUnmounted(() => {
    unwatch?.();
    tearDown();
  });
  if (dependencies.length > 0)
    watch(
      () => dependencies,
      () => {
        stopListening();
        current.value = callback;
        listen();
      },
      { deep: true },
    );
  return {
    leaveChannel: tearDown,
    leave: () => tearDown(true),
    stopListening,
    listen,
    channel: () => subscription,
    recovery,
  };
}

export function useEchoNotification(channelName, callback = () => {}, event = [], dependencies = []) {
  const result = useEcho(channelName, [], callback, dependencies, 'private');
  const types = notificationTypes(event);
  let listening = false;
  const cb = (n) => {
    if (listening && (types.length === 0 || types.includes(n.type))) callback(n);
  };
  const listen = () => {
    if (listening) return;
    result.channel().notification(cb);
    listening = true;
  };
  const stopListening = () => {
    if (!listening) return;
    result.channel().stopListeningForNotification(cb);
    listening = false;
  };
  onMounted(listen);
  onUnmounted(stopListening);
  return { ...result, stopListening, listen };
}

/** The members' `user_info`, kept current while mounted. */
function useMembers(channel) {
  const members = ref([]);
  let undo;
  onMounted(() => (undo = watchMembers(channel, (m) => (members.value = m))));
  onUnmounted(() => undo?.());
  return members;
}

export function useEchoPresence(channelName, event = [], callback = () => {}, dependencies = []) {
  const result = useEcho(channelName, event, callback, dependencies, 'presence');
  return { ...result, members: useMembers(result.channel()) };
}

export function useEchoPublic(channelName, event = [], callback = () => {}, dependencies = []) {
  return useEcho(channelName, event, callback, dependencies, 'public');
}

export function useChannel(channelName, visibility = 'private') {
  const channel = spec(channelName, visibility);
  const subscription = resolve(channel);
  let left = false;
  const tearDown = (leaveAll = false) => {
    if (!left) release(channel, leaveAll);
    left = true;
  };
  onUnmounted(() => tearDown());
  return { leaveChannel: tearDown, leave: () => tearDown(true), channel: () => subscription };
}

export function usePresenceChannel(channelName) {
  const result = useChannel(channelName, 'presence');
  return { ...result, members: useMembers(result.channel()) };
}

export const usePublicChannel = (channelName) => useChannel(channelName, 'public');

export function useEchoModel(model, identifier, event = [], callback = () => {}, dependencies = []) {
  return useEcho(`${model}.${identifier}`, modelEvents(event), callback, dependencies, 'private');
}

function useConnectionChange(callback, invokeOnMount = true) {
  let undo;
  onMounted(() => {
    if (invokeOnMount) callback(echo().connectionStatus());
    undo = onStatus(callback);
  });
  onUnmounted(() => undo?.());
}

export function useConnectionStatus() {
  const status = ref(echo().connectionStatus());
  useConnectionChange((s) => (status.value = s));
  return status;
}

export function useSocketId() {
  const id = ref(echo().socketId());
  useConnectionChange(() => (id.value = echo().socketId()), false);
  return id;
}
