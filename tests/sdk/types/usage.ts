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
const sent: boolean = chorus.private('chat_privado.7').whisper('typing', { userId: 1 });
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
