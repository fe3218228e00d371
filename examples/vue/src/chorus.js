import { Chorus } from 'chorus-sdk';

// One connection per signed-in page. Private and presence channels are authorized by the
// backend's /broadcasting/auth (proxied by Vite), which sees who we are from the bearer token.
export function createChorus(token) {
  const env = import.meta.env;
  return new Chorus({
    key: env.VITE_CHORUS_KEY || 'app-key',
    wsHost: env.VITE_CHORUS_HOST || window.location.hostname,
    wsPort: Number(env.VITE_CHORUS_PORT || 6001),
    forceTLS: env.VITE_CHORUS_TLS === 'true',
    authEndpoint: '/broadcasting/auth',
    auth: { headers: { Authorization: `Bearer ${token}` } },
  });
}
