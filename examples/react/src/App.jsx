import { useState } from 'react';
import SignIn from './components/SignIn.jsx';
import ChatApp from './components/ChatApp.jsx';
import { connectAs, disconnect } from './chorus.js';

// The session lives in sessionStorage: each browser tab can be signed in as a different user.
const KEY = 'chorus-chat-session';
// Restored once, outside render: Echo is configured before ChatApp's hooks first use it.
const restored = JSON.parse(sessionStorage.getItem(KEY) || 'null');
if (restored) connectAs(restored.token);

export default function App() {
  const [session, setSession] = useState(restored);

  function signedIn(s) {
    sessionStorage.setItem(KEY, JSON.stringify(s));
    connectAs(s.token);
    setSession(s);
  }
  // Here, not in a ChatApp effect cleanup: StrictMode runs those once more in development, without
  // a real unmount.
  function signedOut() {
    disconnect();
    sessionStorage.removeItem(KEY);
    setSession(null);
  }

  return session ? (
    <ChatApp key={session.token} session={session} onSignedOut={signedOut} />
  ) : (
    <SignIn onSignedIn={signedIn} />
  );
}
