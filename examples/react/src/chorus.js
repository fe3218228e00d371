import { configureEcho, echo } from 'chorus-sdk/react';

// One connection per signed-in page, shared by the components' hooks. Private and presence
// channels are authorized by the backend's /broadcasting/auth (proxied by Vite), which sees who we
// are from the bearer token: each sign-in configures Echo again, with its own token.
export function connectAs(token) {
  const env = import.meta.env;
  configureEcho({
    key: env.VITE_CHORUS_KEY || 'app-key',
    wsHost: env.VITE_CHORUS_HOST || window.location.hostname,
    wsPort: Number(env.VITE_CHORUS_PORT || 6001),
    forceTLS: env.VITE_CHORUS_TLS === 'true',
    authEndpoint: '/broadcasting/auth',
    auth: { headers: { Authorization: `Bearer ${token}` } },
  });
}

/** Signing out: `configureEcho` alone would leave the old connection open. */
export const disconnect = () => echo().disconnect();
