import { useState } from 'react';
import { login } from '../api.js';
import Avatar from './Avatar.jsx';

// The demo users the backend creates.
const USERS = [
  { id: 1, name: 'Ana' },
  { id: 2, name: 'Bruno' },
  { id: 3, name: 'Carla' },
];

export default function SignIn({ onSignedIn }) {
  const [error, setError] = useState('');

  async function signIn(user) {
    setError('');
    try {
      onSignedIn(await login(user.id));
    } catch (e) {
      setError(`Could not sign in: ${e.message}. Is the backend running?`);
    }
  }

  return (
    <main className="signin">
      <div className="signin-card">
        <div className="logo">
          <svg width="26" height="26" viewBox="0 0 24 24" fill="currentColor">
            <path d="M4 4h16v11H9l-5 5V4z" />
          </svg>
        </div>
        <h1>Chorus Chat</h1>
        <p>
          Pick a demo user to sign in as.
          <br />
          Use a second tab for another user.
        </p>
        <div className="signin-users">
          {USERS.map((user) => (
            <button key={user.id} className="signin-user" data-testid={`signin-${user.name}`} onClick={() => signIn(user)}>
              <Avatar user={user} size={36} />
              <span>{user.name}</span>
              <small>Sign in →</small>
            </button>
          ))}
        </div>
        {error && <div className="error">{error}</div>}
      </div>
    </main>
  );
}
