// Compile-only check of chorus-sdk/echo, chorus-sdk/vue and chorus-sdk/react: the same calls as
// with laravel-echo / @laravel/echo-vue / @laravel/echo-react, typed events through `Events`.
import Echo from 'laravel-echo';
import type { Ref } from 'vue';
import { ChorusConnector, type ConnectionStatus } from 'chorus-sdk/echo';
import type { Recovery } from 'chorus-sdk';
import * as vue from 'chorus-sdk/vue';
import * as react from 'chorus-sdk/react';

declare global {
  interface Events {
    OrderShipped: { id: number; total: number };
  }
}

const echo = new Echo({ broadcaster: ChorusConnector, key: 'app-key', wsHost: '127.0.0.1', wsPort: 6001, forceTLS: false });
echo.private('orders.1').listen('.OrderShipped', () => {});
const connector = new ChorusConnector({ key: 'app-key' });
const status: ConnectionStatus = connector.connectionStatus();
const stop: () => void = connector.onConnectionChange((s) => s === 'reconnecting');
connector.encryptedPrivateChannel('vault.1').listen('.Secret', () => {});

vue.configureEcho({ broadcaster: ChorusConnector, key: 'app-key', wsHost: '127.0.0.1', wsPort: 6001 });
vue.configureEcho({ key: 'app-key', auth: { headers: () => ({ Authorization: 'Bearer t' }) } });
vue.useEcho('orders.1', 'OrderShipped', (e) => e.total.toFixed());
const { channel, leave } = vue.useEchoPublic<{ text: string }>('chat.1', ['.Message', '.Edited'], (e) => e.text);
vue.useEcho('chat.1', ['.Message'], () => {}, [], 'presence').channel().here(() => {});
channel().listen('.Other', () => {});
leave();
const presence = vue.useEchoPresence('room.1', [], () => {});
const members: Ref<any[]> = presence.members;
presence.channel().here(() => {});
vue.useEchoNotification<{ text: string }>('App.Models.User.1', (n) => n.text + n.type + n.id);
vue.useEchoModel<{ id: number }, 'App.Models.Post'>('App.Models.Post', 1, ['PostUpdated'], (p) => p.model.id);
const vueStatus: Ref<ConnectionStatus> = vue.useConnectionStatus();
const vueRecovery: Ref<Recovery | null> = vue.useEcho('orders.1', 'OrderShipped', () => {}).recovery;
if (vueRecovery.value && !vueRecovery.value.recovered) void vueRecovery.value.reason;
const vueSocket: Ref<string | undefined> = vue.useSocketId();
vue.usePresenceChannel('room.1').channel().joining(() => {});
vue.echo().private('chat.1').whisper('typing', {}).whisper('typing', {});

react.configureEcho({ key: 'app-key' });
react.useEcho('orders.1', 'OrderShipped', (e) => e.id, [], 'private');
react.useEchoPresence('room.1').members.map((m) => m);
react.useChannel('chat.1').channel()?.whisper('typing', {});
const reactStatus: ConnectionStatus = react.useConnectionStatus();
const reactSocket: string | undefined = react.useSocketId();

// @ts-expect-error OrderShipped's payload is typed through Events: no `name`
vue.useEcho('orders.1', 'OrderShipped', (e) => e.name);
// @ts-expect-error a React channel() may be null before the effect ran
react.useChannel('chat.1').channel().whisper('typing', {});
// @ts-expect-error not a visibility
vue.useEcho('x', [], () => {}, [], 'secret');
// @ts-expect-error not an Echo connection status
const badStatus: ConnectionStatus = 'unavailable';
// @ts-expect-error useChannel listens to nothing: no recovery of its own
void react.useChannel('chat.1').recovery;
// @ts-expect-error model events are the model's own
vue.useEchoModel('App.Models.Post', 1, ['UserCreated']);

void [status, stop, members, vueStatus, vueRecovery, vueSocket, reactStatus, reactSocket, badStatus];
