// `chorus-sdk/react`: the hooks of @laravel/echo-react 2.5 (same names, arguments and results) on
// the Chorus client, without laravel-echo or pusher-js. Channels are reference-counted across
// components: the last one to unmount leaves the channel. Extras: presence `members`, and
// `recovery`, the outcome of the last reconnect's recovery of missed events.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { echo, modelEvents, notificationTypes, onStatus, release, resolve, spec, toArray, watchMembers, watchRecovery } from './hooks.js';

export { configureEcho, echo, echoIsConfigured } from './hooks.js';

/** The channel subscription for this component: taken on mount, released on unmount. */
function useSubscription(channelName, visibility) {
  const channel = useMemo(() => spec(channelName, visibility), [channelName, visibility]);
  const subscription = useRef(null);
  const tearDown = useCallback(
    (leaveAll = false) => {
      if (!subscription.current) return;
      subscription.current = null;
      release(channel, leaveAll);
    },
    [channel],
  );
  return { channel, subscription, tearDown };
}

export function useEcho(channelName, event = [], callback = () => {}, dependencies = [], visibility = 'private') {
  const { channel, subscription, tearDown: release } = useSubscription(channelName, visibility);
  // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller's dependencies, as in @laravel/echo-react
  const callbackFunc = useCallback(callback, dependencies);
  const listening = useRef(null); // the channel and callback listened with
  const eventKey = Array.isArray(event) ? JSON.stringify(event) : event;
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const events = useMemo(() => toArray(event), [eventKey]);

  const stopListening = useCallback(() => {
    const l = listening.current;
    if (!l) return;
    for (const e of events) l.channel.stopListening(e, l.cb);
    listening.current = null;
  }, [events]);

  const listen = useCallback(() => {
    const ch = subscription.current;
    if (listening.current || !ch) return;
    for (const e of events) ch.listen(e, callbackFunc);
    listening.current = { channel: ch, cb: callbackFunc };
  }, [events, callbackFunc, subscription]);

  const tearDown = useCallback(
    (leaveAll = false) => {
      stopListening();
      release(leaveAll);
    },
    [stopListening, release],
  );

  const leave = useCallback(() => tearDown(true), [tearDown]);

  useEffect(() => {
    subscription.current = resolve(channel);
    listen();
    return tearDown;
  }, [listen, tearDown, channel, subscription]);

  const [recovery, setRecovery] = useState(null);
  // After the effect above (declaration order), on the channel it took.
  useEffect(() => {
    const ch = subscription.current;
    return ch ? watchRecovery(ch, setRecovery) : undefined;
  }, [listen, tearDown, channel, subscription]);

  // The same `channel` function while the subscription is: a new recovery outcome must not look
  // like a new channel to the app's effects that depend on it.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const current = useCallback(() => subscription.current, [subscription, listen, tearDown]);
  return useMemo(
    () => ({ leaveChannel: tearDown, leave, stopListening, listen, channel: current, recovery }),
    [leave, listen, stopListening, tearDown, current, recovery],
  );
}

export function useEchoNotification(channelName, callback = () => {}, event = [], dependencies = []) {
  const result = useEcho(channelName, [], callback, dependencies, 'private');
  const eventKey = Array.isArray(event) ? JSON.stringify(event) : event;
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const types = useMemo(() => notificationTypes(event), [eventKey]);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const memoized = useCallback(callback, dependencies);
  const listening = useRef(null);
  const cb = useCallback(
    (n) => {
      if (listening.current && (types.length === 0 || types.includes(n.type))) memoized(n);
    },
    [memoized, types],
  );
  const listen = useCallback(() => {
    const ch = result.channel();
    if (listening.current || !ch) return;
    ch.notification(cb);
    listening.current = ch;
  }, [cb, result]);
  const stopListening = useCallback(() => {
    listening.current?.stopListeningForNotification(cb);
    listening.current = null;
  }, [cb]);
  useEffect(() => {
    listen();
    return stopListening;
  }, [listen, stopListening]);
  return useMemo(() => ({ ...result, stopListening, listen }), [result, stopListening, listen]);
}

/** The members' `user_info` of the presence channel `result.channel()`, kept current. */
function useMembers(result) {
  const [members, setMembers] = useState([]);
  useEffect(() => {
    const ch = result.channel();
    return ch ? watchMembers(ch, setMembers) : undefined;
  }, [result]);
  return members;
}

export function useEchoPresence(channelName, event = [], callback = () => {}, dependencies = []) {
  const result = useEcho(channelName, event, callback, dependencies, 'presence');
  const members = useMembers(result);
  return useMemo(() => ({ ...result, members }), [result, members]);
}

export function useEchoPublic(channelName, event = [], callback = () => {}, dependencies = []) {
  return useEcho(channelName, event, callback, dependencies, 'public');
}

export function useChannel(channelName, visibility = 'private') {
  const { channel, subscription, tearDown } = useSubscription(channelName, visibility);
  const leave = useCallback(() => tearDown(true), [tearDown]);
  useEffect(() => {
    subscription.current = resolve(channel);
    return () => tearDown();
  }, [tearDown, channel, subscription]);
  return useMemo(() => ({ leaveChannel: tearDown, leave, channel: () => subscription.current }), [leave, tearDown, subscription]);
}

export function usePresenceChannel(channelName) {
  const result = useChannel(channelName, 'presence');
  const members = useMembers(result);
  return useMemo(() => ({ ...result, members }), [result, members]);
}

export const usePublicChannel = (channelName) => useChannel(channelName, 'public');

export function useEchoModel(model, identifier, event = [], callback = () => {}, dependencies = []) {
  return useEcho(`${model}.${identifier}`, modelEvents(event), callback, dependencies, 'private');
}

function useConnectionChange(callback, invokeOnMount = true) {
  const ref = useRef(callback);
  useLayoutEffect(() => {
    ref.current = callback;
  });
  useEffect(() => {
    if (invokeOnMount) ref.current(echo().connectionStatus());
    return onStatus((s) => ref.current(s));
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
}

export function useConnectionStatus() {
  const [status, setStatus] = useState(() => echo().connectionStatus());
  useConnectionChange(setStatus);
  return status;
}

export function useSocketId() {
  const [id, setId] = useState(() => echo().socketId());
  useConnectionChange(() => setId(echo().socketId()), false);
  return id;
}
