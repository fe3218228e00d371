// Compile-only check of the package's types (tsc --noEmit): how an app uses the SDK.
import {
  Chorus,
  type ConnectionState,
  type RecoveryFailedReason,
  type StateChange,
  type StreamPosition,
  type SubscriptionError,
} from 'chorus-sdk';

interface NewMessage {
  id: number;
  text: string;
}

const chorus = new Chorus({
  key: 'app-key',
  wsHost: '127.0.0.1',
  wsPort: 6001,
  forceTLS: false,
  authEndpoint: '/broadcasting/auth',
  auth: { headers: { Authorization: 'Bearer x' } },
  userAuthentication: { endpoint: '/broadcasting/user-auth' },
});

chorus.connection.on('state_change', ({ previous, current }: StateChange) => {
  const s: ConnectionState = current;
  void previous;
  void s;
});
chorus.connection.on('error', (e) => {
  if (e.type === 'AuthError') console.log(e.data.status);
});
chorus.channel('chat.1').listen<NewMessage>('.NewMessage', (e) => e.text.toUpperCase());
chorus
  .private('chat_privado.7')
  .listen('MensajePrivado', () => {})
  .listenForWhisper<{ userId: number }>('typing', (d) => d.userId + 1)
  .error((err: SubscriptionError) => err.status);
const sent: boolean = chorus.private('chat_privado.7').trigger('client-typing', { userId: 1 });
chorus.private('chat_privado.7').whisper('typing', { userId: 1 }).whisper('typing', { userId: 2 }).listen('.X', () => {});
// Encrypted channels, presence `me`, subscription counts, cache misses, the watchlist.
chorus.encryptedPrivate('vault.1').listen<NewMessage>('.Secret', (m) => m.text);
const me: string | undefined = chorus.join<{ name: string }>('room.1').me?.info.name;
const count: number | undefined = chorus.channel('chat.1').on('pusher:subscription_count', (d) => d.subscription_count.toFixed()).subscriptionCount;
chorus.channel('cache-prices').on('pusher:cache_miss', () => {});
chorus.user.watchlist.on('online', (e) => e.user_ids.map((u) => u.length));
chorus.private('App.Models.User.1').stopListeningForNotification();
// Auth that changes after construction, pusher-js 8's options, Echo's authorizer.
let token = 'a';
new Chorus({ key: 'k', wsPath: '/ws', csrfToken: 'c', auth: { headers: () => ({ Authorization: 'Bearer ' + token }) } });
new Chorus({
  key: 'k',
  channelAuthorization: { endpoint: '/auth', headersProvider: () => ({ Authorization: 'Bearer ' + token }) },
  userAuthentication: { customHandler: ({ socketId }, cb) => cb(null, { auth: socketId, user_data: '{}' }) },
});
new Chorus({ key: 'k', authorizer: (channel) => ({ authorize: (socketId, cb) => cb(null, { auth: channel.name + socketId }) }) });
token = 'b';
void [me, count];
chorus
  .join<{ id: number; name: string }>('room.1')
  .here((members) => members.map((m) => m.name))
  .joining((m) => m.name)
  .leaving((m) => m.id);
chorus.private('App.Models.User.1').notification((n) => n);
chorus.channel('chat.1').stopListening('.NewMessage').subscribed(() => {});
// History and recovery: refetch unless every missed event was recovered.
const feed = chorus
  .channel('feed.1')
  .listen<NewMessage>('.NewMessage', (m) => m.id)
  .subscribed(({ recovered }) => (recovered ? undefined : 'refetch'))
  .recovered((r) => {
    const n: number = r.replayed;
    const ok: true = r.recovered;
    void [n, ok];
  })
  .recoveryFailed((r) => {
    const why: RecoveryFailedReason = r.reason;
    const ok: false = r.recovered;
    if (why === 'epoch_changed' || why === 'expired' || why === 'unavailable') void ok;
  });
const pos: StreamPosition | undefined = feed.position;
void pos?.offset.toFixed();
chorus.join('room.1').subscribed((info) => info.recovered);
chorus.leave('chat.1');
chorus.leaveChannel('private-chat_privado.7');
chorus.leaveAllChannels();
const id: string | undefined = chorus.socketId();
chorus.signin();
chorus.disconnect();
chorus.connect();
void sent;
void id;

// ---------------------------------------------------------------------------------------------
// Negative cases: each line below `@ts-expect-error` must NOT compile. If a type were widened to
// `any` (or an option/event lost its type), the directive would be unused, which tsc reports as an
// error (TS2578) in its own right, so this file then fails to compile.

// Typed events: `listen<T>` hands the callback a T, with T's field types.
// @ts-expect-error `id` is a number: no toUpperCase
chorus.channel('chat.1').listen<NewMessage>('.NewMessage', (e) => e.id.toUpperCase());
// @ts-expect-error NewMessage has no `body`
chorus.channel('chat.1').listen<NewMessage>('.NewMessage', (e) => e.body);
// @ts-expect-error a callback expecting a string cannot take a NewMessage
chorus.channel('chat.1').listen<NewMessage>('.NewMessage', (e: string) => e);
// @ts-expect-error whisper payload typed through listenForWhisper<T>
chorus.private('chat_privado.7').listenForWhisper<{ userId: number }>('typing', (d) => d.userId.trim());
// @ts-expect-error presence members are the typed user_info
chorus.join<{ id: number; name: string }>('room.1').here((members) => members[0].email);
// @ts-expect-error joining gives one member, not an array
chorus.join<{ id: number; name: string }>('room.1').joining((m) => m.length);
// @ts-expect-error notification<T> is typed too
chorus.private('App.Models.User.1').notification<{ id: string }>((n) => n.id.toFixed());

// Connection states and events.
// @ts-expect-error not a connection state
const badState: ConnectionState = 'open';
// @ts-expect-error not a connection state either (pusher-js has no 'reconnecting')
chorus.connection.on('state_change', ({ current }) => current === 'reconnecting');
// @ts-expect-error `state` is a ConnectionState, not a number
const stateNumber: number = chorus.connection.state;
// @ts-expect-error no such connection event
chorus.connection.on('no_such_event', () => {});
// @ts-expect-error connecting_in passes a number of milliseconds
chorus.connection.on('connecting_in', (ms: string) => ms);
// @ts-expect-error an error must be narrowed by `type` before reading AuthError's `status`
chorus.connection.on('error', (e) => e.data.status);
chorus.connection.on('error', (e) => {
  if (e.type === 'PusherError') {
    // @ts-expect-error a PusherError has a code, not a status
    void e.data.status;
  }
});
// @ts-expect-error not an error type
chorus.connection.on('error', (e) => e.type === 'TimeoutError');

// Options.
// @ts-expect-error `key` is required
new Chorus({ wsHost: '127.0.0.1' });
// @ts-expect-error ports are numbers
new Chorus({ key: 'k', wsPort: '6001' });
// @ts-expect-error forceTLS is a boolean
new Chorus({ key: 'k', forceTLS: 'yes' });
// @ts-expect-error header values are strings
new Chorus({ key: 'k', auth: { headers: { 'X-Id': 1 } } });
// @ts-expect-error the backoff cap is a number of milliseconds
new Chorus({ key: 'k', maxReconnectDelay: '10s' });
// @ts-expect-error unknown option (a typo of wsHost)
new Chorus({ key: 'k', wshost: '127.0.0.1' });
// @ts-expect-error Chorus is a class: `new` is required
Chorus({ key: 'k' });

// Channel kinds: client events and presence only where the protocol allows them.
// @ts-expect-error a public channel cannot whisper (client events need private/presence)
chorus.channel('chat.1').whisper('typing', { userId: 1 });
// @ts-expect-error nor listen for whispers
chorus.channel('chat.1').listenForWhisper('typing', () => {});
// @ts-expect-error `here` is for presence channels only
chorus.private('chat_privado.7').here(() => {});
// @ts-expect-error whisper returns the channel (it chains)
const whisperText: boolean = chorus.private('chat_privado.7').whisper('typing', {});
// @ts-expect-error encrypted channels are not presence channels
chorus.encryptedPrivate('vault.1').here(() => {});
// @ts-expect-error auth headers are strings, also from a function
new Chorus({ key: 'k', auth: { headers: () => ({ 'X-Id': 1 }) } });
// @ts-expect-error the watchlist says online or offline
chorus.user.watchlist.on('away', () => {});

// Values that may be missing (strict null checks).
// @ts-expect-error the socket id is undefined while not connected
const socketIdNow: string = chorus.socketId();
// @ts-expect-error a channel has no position without server history
void chorus.channel('feed.1').position.offset;
// @ts-expect-error `recovered` is a boolean
chorus.channel('feed.1').subscribed(({ recovered }) => recovered.toFixed());
// @ts-expect-error a successful recovery has no `reason`
chorus.channel('feed.1').recovered((r) => r.reason);
// @ts-expect-error not a RecoveryFailedReason
const badReason: RecoveryFailedReason = 'timeout';
// @ts-expect-error channel names are strings
chorus.leave(1);

void [badState, stateNumber, whisperText, socketIdNow, badReason];
