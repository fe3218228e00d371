import { useState } from 'react';
import SignIn from './components/SignIn.jsx';
import ChatApp from './components/ChatApp.jsx';

// The session lives in sessionStorage: each browser tab can be signed in as a different user.
const KEY = 'chorus-chat-session';

export default function App() {
  const [session, setSession] = useState(() => JSON.parse(sessionStorage.getItem(KEY) || 'null'));

  function signedIn(s) {
    sessionStorage.setItem(KEY, JSON.stringify(s));
    setSession(s);
  }
  function signedOut() {
    sessionStorage.removeItem(KEY);
    setSession(null);
  }

  return session ? (
    <ChatApp key={session.token} session={session} onSignedOut={signedOut} />
  ) : (
    <SignIn onSignedIn={signedIn} />
  );
}
