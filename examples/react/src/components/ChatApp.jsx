import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { echo, useConnectionStatus, useEchoNotification, useEchoPresence } from 'chorus-sdk/react';
import { ApiError, createApi } from '../api.js';
import Avatar from './Avatar.jsx';
import ChatList from './ChatList.jsx';
import ChatWindow from './ChatWindow.jsx';
import Toasts from './Toasts.jsx';

/** The current time, refreshed every `ms` (for "last seen 3 min ago"). */
function useNow(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

const NOBODY = new Set();
const LABELS = { connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…' };

export default function ChatApp({ session, onSignedOut }) {
  const me = session.user;
  const connection = useConnectionStatus(); // connected, connecting, reconnecting, disconnected, failed
  // Every request carries the socket id (X-Socket-ID) so the backend can use toOthers().
  const api = useMemo(() => createApi(session.token, () => echo().socketId()), [session.token]);

  const [chats, setChats] = useState([]); // [{ id, other, last_message, unread }]
  const [users, setUsers] = useState([]); // everyone, with the backend's last_seen
  const [leftAt, setLeftAt] = useState({}); // user id -> when we saw them leave
  const [openChatId, setOpenChatId] = useState(null);
  const [toasts, setToasts] = useState([]);
  const now = useNow(30000);
  const openChatRef = useRef(null);
  useEffect(() => {
    openChatRef.current = openChatId;
  }, [openChatId]);

  const handle = useCallback(
    (promise) =>
      promise.catch((e) => {
        if (e instanceof ApiError && e.status === 401) onSignedOut();
        else console.error(e);
      }),
    [onSignedOut],
  );
  const loadChats = useCallback(() => handle(api.get('/api/chats').then(setChats)), [api, handle]);
  const loadUsers = useCallback(() => handle(api.get('/api/users').then(setUsers)), [api, handle]);
  useEffect(() => {
    loadChats();
    loadUsers();
  }, [loadChats, loadUsers]);
  // Back after an outage: last-seen times of those who left meanwhile come from the backend.
  const previous = useRef(connection);
  useEffect(() => {
    if (connection === 'connected' && previous.current === 'reconnecting') loadUsers();
    previous.current = connection;
  }, [connection, loadUsers]);

  const toastSeq = useRef(0);
  const toast = useCallback((title, body, chatId) => {
    const id = ++toastSeq.current;
    setToasts((list) => [...list, { id, title, body, chatId }].slice(-3));
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), 6000);
  }, []);

  // My notification channel: a toast and an unread badge for messages in chats that are not open.
  // The callback only uses refs and stable functions: no dependencies, so never subscribed again.
  const { channel: notificationChannel } = useEchoNotification(`App.Models.User.${me.id}`, (n) => {
    const isOpen = n.chat_id === openChatRef.current;
    const lastMessage = {
      id: n.message_id,
      user_id: n.from.id,
      body: n.preview,
      attachment: n.attachment ? { name: n.attachment } : null,
      created_at: n.created_at,
    };
    setChats((list) => {
      const chat = list.find((c) => c.id === n.chat_id);
      if (!chat) return list;
      const updated = { ...chat, last_message: lastMessage, unread: isOpen ? 0 : chat.unread + 1 };
      return [updated, ...list.filter((c) => c.id !== chat.id)];
    });
    if (!isOpen) toast(n.from.name, n.preview || `📎 ${n.attachment}`, n.chat_id);
  });
  // Every subscription that could not replay missed notifications (the first one, and
  // resubscriptions after a reconnect the server could not recover) reloads the list (unread
  // counts). The SDK has no way to remove a `subscribed` callback: cleanup mutes it instead.
  useEffect(() => {
    let active = true;
    notificationChannel().subscribed(({ recovered }) => active && !recovered && loadChats());
    return () => {
      active = false;
    };
  }, [notificationChannel, loadChats]);

  // Who is online anywhere in the app: the members of presence-online.
  const { channel: onlineChannel, members } = useEchoPresence('online');
  const online = useMemo(() => new Set(members.map((m) => m.id)), [members]);
  useEffect(() => {
    let active = true;
    onlineChannel().leaving((m) => active && setLeftAt((l) => ({ ...l, [m.id]: Date.now() })));
    return () => {
      active = false;
    };
  }, [onlineChannel]);

  const lastSeenOf = (userId) => {
    const fromServer = users.find((u) => u.id === userId)?.last_seen ?? 0;
    return Math.max(fromServer, leftAt[userId] ?? 0) || null;
  };

  function select(chatId) {
    setOpenChatId(chatId);
    setChats((list) => list.map((c) => (c.id === chatId ? { ...c, unread: 0 } : c)));
    setToasts((list) => list.filter((t) => t.chatId !== chatId));
  }

  function chatWith(userId) {
    const chat = chats.find((c) => c.other.id === userId);
    if (chat) select(chat.id);
  }

  const sent = useCallback((message) => {
    setChats((list) => {
      const chat = list.find((c) => c.id === message.chat_id);
      return chat ? [{ ...chat, last_message: message }, ...list.filter((c) => c !== chat)] : list;
    });
  }, []);

  async function signOut() {
    await api.post('/api/logout').catch(() => {});
    onSignedOut();
  }

  const openChat = chats.find((c) => c.id === openChatId);
  // While the connection is down, presence is not known: who was online may have left meanwhile.
  // Nobody is shown online until the presence channel is joined again (its members are filled anew).
  const live = connection === 'connected';
  const shownOnline = live ? online : NOBODY;
  const onlineUsers = users.filter((u) => u.id !== me.id && shownOnline.has(u.id));

  return (
    <div className={`app${openChat ? ' chat-open' : ''}`}>
      <aside className="sidebar">
        <div className="me">
          <Avatar user={me} size={42} online={connection === 'connected'} />
          <div className="me-info">
            <div className="me-name" data-testid="me">
              {me.name}
            </div>
            <div className="connection" data-state={connection} data-testid="connection">
              {LABELS[connection] ?? 'Disconnected'}
            </div>
          </div>
          <button className="link-button" onClick={signOut}>
            Sign out
          </button>
        </div>

        <div className="section-title">Online now</div>
        {onlineUsers.length ? (
          <div className="online-list">
            {onlineUsers.map((user) => (
              <button key={user.id} className="online-user" data-testid="online-user" onClick={() => chatWith(user.id)}>
                <Avatar user={user} size={40} online />
                {user.name}
              </button>
            ))}
          </div>
        ) : !live ? (
          <div className="online-empty" data-testid="online-unknown">
            Shown again once connected.
          </div>
        ) : (
          <div className="online-empty">Nobody else is here right now.</div>
        )}

        <div className="section-title">Chats</div>
        <ChatList chats={chats} me={me} openChatId={openChatId} online={shownOnline} now={now} onSelect={select} />
      </aside>

      <main className="main">
        {connection === 'reconnecting' && (
          <div className="banner" data-testid="banner">
            <span className="spinner" /> Connection lost. Reconnecting… Messages you send are still saved.
          </div>
        )}
        {openChat ? (
          <ChatWindow
            key={openChat.id}
            api={api}
            me={me}
            chat={openChat}
            live={live}
            online={shownOnline.has(openChat.other.id)}
            lastSeen={lastSeenOf(openChat.other.id)}
            now={now}
            onSent={sent}
            onBack={() => setOpenChatId(null)}
          />
        ) : (
          <div className="placeholder">
            <div>
              <strong>Welcome, {me.name}</strong>
              Choose a chat on the left to start talking.
            </div>
          </div>
        )}
      </main>

      <Toasts toasts={toasts} onOpen={(t) => select(t.chatId)} />
    </div>
  );
}
