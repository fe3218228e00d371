import { configureEcho, useConnectionStatus, useEcho, useEchoNotification, useEchoPresence } from 'chorus-sdk/react';
import { useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';

import { echoOptions, names, onMembers, onMount, onNotification, onOrder, onRecovery, onStatus, watchPresence } from '../shared/app.js';

// No `broadcaster`: chorus-sdk/react always uses Chorus.
configureEcho(echoOptions());

function Live() {
  const orders = useEcho(names.orders, 'OrderShipped', onOrder);
  useEffect(() => {
    if (orders.recovery) onRecovery(orders.recovery);
  }, [orders.recovery]);
  // An app's effects depend on `channel`: a recovery must not make it look new.
  useEffect(() => {
    window.rec.channelFns = (window.rec.channelFns ?? 0) + 1;
  }, [orders.channel]);
  useEchoNotification(names.user, onNotification);
  const presence = useEchoPresence(names.room);
  // After the hook's own effect (declaration order), which took the channel.
  useEffect(() => {
    watchPresence(presence.channel());
    onMount();
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    onMembers(presence.members);
  }, [presence.members]);
  const status = useConnectionStatus();
  useEffect(() => {
    onStatus(status);
  }, [status]);
  return (
    <p>
      status: <b id="status">{status}</b>
    </p>
  );
}

function App() {
  const [shown, setShown] = useState(true);
  return (
    <>
      <button id="toggle" onClick={() => setShown(!shown)}>
        {shown ? 'unmount' : 'mount'}
      </button>
      {shown && <Live />}
    </>
  );
}

createRoot(document.getElementById('app')).render(<App />);
