// What the three framework apps share: the Echo options taken from the page's query string, the
// channel names, and the callbacks that record what arrives on `window.rec` for the test to read.
//   ?port=<chorus port>&key=<app key>&user=<user id>&tag=<channel suffix>
const q = new URLSearchParams(location.search);
const user = q.get('user') ?? '1';
const tag = q.get('tag') ?? 'demo';
const headers = { 'X-Test-Token': 'let-me-in', 'X-User-Id': user, 'X-User-Name': 'User ' + user };

/** configureEcho's options (the auth endpoint is this page's server, same origin). */
export const echoOptions = (extra = {}) => ({
  key: q.get('key') ?? 'app-key',
  wsHost: '127.0.0.1',
  wsPort: Number(q.get('port')),
  forceTLS: false,
  authEndpoint: '/broadcasting/auth',
  auth: { headers },
  ...extra,
});

/** useEcho on `private-orders.{tag}`, useEchoPresence on `presence-room.{tag}`,
 * useEchoNotification on `private-App.Models.User.{user}`. */
export const names = { orders: `orders.${tag}`, room: `room.${tag}`, user: `App.Models.User.${user}` };

const ids = (members) => members.map((m) => String(m.id)).sort();

export const rec = (window.rec = { orders: [], notifications: [], presence: [], members: null, recovery: null, statuses: [], mounts: 0 });
export const onOrder = (e) => rec.orders.push(e);
export const onNotification = (n) => rec.notifications.push(n);
export const onStatus = (s) => rec.statuses.push(s);
/** The `members` extra of chorus-sdk's useEchoPresence (user ids, sorted). */
export const onMembers = (m) => (rec.members = ids(m));
export const onMount = () => (rec.mounts += 1);
/** The `recovery` extra of chorus-sdk's useEcho on the orders channel. */
export const onRecovery = (r) => (rec.recovery = r);
/** Echo's presence callbacks on the channel the hook holds. */
export const watchPresence = (channel) =>
  channel
    .here((m) => rec.presence.push(['here', ids(m)]))
    .joining((m) => rec.presence.push(['joining', String(m.id)]))
    .leaving((m) => rec.presence.push(['leaving', String(m.id)]));

window.appReady = true;
