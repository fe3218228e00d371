import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { useEcho, useEchoPresence } from 'chorus-sdk/react';
import { dayLabel, fileSize, lastSeen, timeOf } from '../format.js';
import Avatar from './Avatar.jsx';

function Attachment({ attachment, api }) {
  const [failed, setFailed] = useState(false);
  const save = (e) => {
    e.preventDefault();
    if (!attachment.url) return; // still being sent
    setFailed(false);
    api.download(attachment.url, attachment.name).catch(() => setFailed(true));
  };
  return (
    <a className="attachment" href={attachment.url} onClick={save} data-testid="attachment">
      <span className="attachment-icon">
        <svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2">
          <path d="M14 3H6a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9z" />
          <path d="M14 3v6h6" />
        </svg>
      </span>
      <span>
        <div className="attachment-name">{attachment.name}</div>
        <div className="attachment-size">
          {fileSize(attachment.size)} · {failed ? 'Download failed, try again' : 'Download'}
        </div>
      </span>
    </a>
  );
}

export default function ChatWindow({ api, me, chat, live = true, online, lastSeen: lastSeenAt, now, onSent, onBack }) {
  const chatId = chat.id;
  const other = chat.other;

  const [messages, setMessages] = useState([]); // from the backend, plus our own pending ones (id null)
  const [otherReadId, setOtherReadId] = useState(0); // the other member has seen messages up to this id
  const [typing, setTyping] = useState(false);
  const [draft, setDraft] = useState('');
  const [file, setFile] = useState(null);
  const fileInput = useRef(null);
  const list = useRef(null);
  const typingTimer = useRef(null);
  const lastWhisper = useRef(0);
  const markedUpTo = useRef(0);
  const seq = useRef(0);

  // --- History over HTTP; loaded again whenever live events may have been missed. ---
  const load = useCallback(async () => {
    try {
      const data = await api.get(`/api/chats/${chatId}/messages`);
      setMessages((prev) => [...data.messages, ...prev.filter((m) => m.id === null)]);
      const member = data.members.find((m) => m.id === other.id);
      setOtherReadId((r) => Math.max(r, member?.last_read_id ?? 0));
    } catch (e) {
      console.error(e);
    }
  }, [api, chatId, other.id]);

  // --- Live: messages, read receipts and typing on private-chat.{id}; who has it open on presence-chat.{id}. ---
  // The hooks leave both channels when the window closes. The window is keyed by chat, so the
  // callbacks' `other` never changes: no dependencies, so never subscribed again.
  const { channel } = useEcho(`chat.${chatId}`, 'MessageSent', ({ message }) => {
    setMessages((prev) => (prev.some((m) => m.id === message.id) ? prev : [...prev, message]));
    if (message.user_id === other.id) setTyping(false);
  });
  useEcho(`chat.${chatId}`, 'MessageRead', (e) => {
    if (e.user_id === other.id) setOtherReadId((r) => Math.max(r, e.last_read_id));
  });
  const { members } = useEchoPresence(`chat.${chatId}`);
  const otherInChat = members.some((m) => m.id === other.id);

  useEffect(() => {
    const typed = (e) => {
      if (e.user_id !== other.id) return;
      setTyping(true);
      clearTimeout(typingTimer.current);
      typingTimer.current = setTimeout(() => setTyping(false), 3000);
    };
    const ch = channel();
    let active = true;
    ch.listenForWhisper('typing', typed)
      // Every subscription that could not replay missed events (the first one, and resubscriptions
      // after a reconnect the server could not recover) loads the history again: no gap, no
      // duplicate. The SDK has no way to remove a `subscribed` callback: cleanup mutes it instead.
      .subscribed(({ recovered }) => active && !recovered && load());
    load();
    return () => {
      active = false;
      ch.stopListeningForWhisper('typing', typed);
      clearTimeout(typingTimer.current);
    };
  }, [channel, other.id, load]);

  // --- Read receipts: tell the backend what we have seen while the page is visible. ---
  useEffect(() => {
    function markRead() {
      if (document.visibilityState !== 'visible') return;
      const latest = Math.max(0, ...messages.filter((m) => m.user_id === other.id).map((m) => m.id));
      if (latest <= markedUpTo.current) return;
      markedUpTo.current = latest;
      api.post(`/api/chats/${chatId}/read`, { message_id: latest }).catch(() => (markedUpTo.current = 0));
    }
    markRead();
    document.addEventListener('visibilitychange', markRead);
    return () => document.removeEventListener('visibilitychange', markRead);
  }, [messages, api, chatId, other.id]);

  // --- Typing: whisper at most once a second while typing; the other side hides it after 3 s. ---
  function onInput(e) {
    setDraft(e.target.value);
    const t = Date.now();
    if (t - lastWhisper.current <= 1000) return;
    channel()?.whisper('typing', { user_id: me.id, name: me.name });
    lastWhisper.current = t;
  }

  function clearFile() {
    setFile(null);
    if (fileInput.current) fileInput.current.value = '';
  }

  // --- Sending: shown at once (optimistic), replaced by the stored message when the backend answers. ---
  async function send(e) {
    e.preventDefault();
    const body = draft.trim();
    if (!body && !file) return;
    const form = new FormData();
    form.append('body', body);
    if (file) form.append('file', file);
    const key = `pending-${++seq.current}`;
    const temp = {
      key,
      id: null,
      user_id: me.id,
      body,
      attachment: file ? { name: file.name, size: file.size } : null,
      created_at: Date.now(),
    };
    setMessages((prev) => [...prev, temp]);
    setDraft('');
    clearFile();
    lastWhisper.current = 0;
    try {
      const saved = await api.upload(`/api/chats/${chatId}/messages`, form);
      setMessages((prev) => [...prev.filter((m) => m.key !== key && m.id !== saved.id), saved]);
      onSent(saved);
    } catch {
      setMessages((prev) => prev.map((m) => (m.key === key ? { ...m, failed: true } : m)));
    }
  }

  // --- Display ---
  const sorted = useMemo(
    () => [...messages].sort((a, b) => (a.id ?? Infinity) - (b.id ?? Infinity) || a.created_at - b.created_at),
    [messages],
  );
  const lastOwn = sorted.filter((m) => m.user_id === me.id).at(-1);

  useLayoutEffect(() => {
    if (list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [messages.length]);

  let status = { text: lastSeen(lastSeenAt, now), cls: '' };
  // Not connected: presence and typing are not current.
  if (!live) status = { text: 'waiting for the connection…', cls: '' };
  else if (typing) status = { text: 'typing…', cls: 'typing' };
  else if (otherInChat) status = { text: 'online · in this chat', cls: 'live' };
  else if (online) status = { text: 'online', cls: 'live' };

  const receipt = (m) => (m.failed ? 'Not sent' : m.id === null ? 'Sending…' : m.id <= otherReadId ? 'Read' : 'Sent');

  const items = [];
  let day = null;
  for (const m of sorted) {
    const d = new Date(m.created_at).toDateString();
    if (d !== day) {
      day = d;
      items.push(
        <div key={`day-${d}`} className="day">
          {dayLabel(m.created_at, now)}
        </div>,
      );
    }
    const own = m.user_id === me.id;
    const read = m.id !== null && m.id <= otherReadId;
    const cls = `message${own ? ' own' : ''}${m.id === null ? ' pending' : ''}${m.failed ? ' failed' : ''}`;
    items.push(
      <div key={m.id ?? m.key} className={cls} data-testid="message" data-own={own}>
        {m.attachment && <Attachment attachment={m.attachment} api={api} />}
        {m.body && (
          <div className="message-body" data-testid="message-body">
            {m.body}
          </div>
        )}
        <div className="message-meta">
          {timeOf(m.created_at)}
          {own && m.id !== null && (
            <span className={`ticks${read ? ' read' : ''}`} title={read ? 'Read' : 'Sent'}>
              {read ? '✓✓' : '✓'}
            </span>
          )}
        </div>
      </div>,
    );
    if (m === lastOwn) {
      items.push(
        <div key="receipt" className="receipt" data-testid="receipt">
          {receipt(m)}
        </div>,
      );
    }
  }

  return (
    <section className="chat" data-testid="chat">
      <header className="chat-header">
        <button className="icon-button back-button" title="Back" onClick={onBack}>
          ←
        </button>
        <Avatar user={other} size={42} online={online} />
        <div>
          <div className="chat-header-name" data-testid="chat-name">
            {other.name}
          </div>
          <div className={`chat-status ${status.cls}`} data-testid="chat-status">
            {status.text}
          </div>
        </div>
      </header>

      <div ref={list} className="messages" data-testid="messages">
        {items}
      </div>

      <div className="typing-line" data-testid="typing">
        {typing && (
          <>
            <span className="dots">
              <i />
              <i />
              <i />
            </span>
            {other.name} is typing…
          </>
        )}
      </div>

      <form className="composer" onSubmit={send}>
        {file && (
          <div className="file-chip" data-testid="file-chip">
            📎 {file.name} ({fileSize(file.size)})
            <button type="button" title="Remove" onClick={clearFile}>
              ×
            </button>
          </div>
        )}
        <div className="composer-row">
          <button type="button" className="icon-button" title="Attach a file" onClick={() => fileInput.current.click()}>
            <svg width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2">
              <path d="M21 12.5l-8.5 8.5a5 5 0 0 1-7-7L14 5.5a3.5 3.5 0 0 1 5 5L10.5 19a2 2 0 0 1-3-3L15 8.5" />
            </svg>
          </button>
          <input
            ref={fileInput}
            className="hidden-input"
            type="file"
            data-testid="file-input"
            onChange={(e) => setFile(e.target.files[0] ?? null)}
          />
          <input
            type="text"
            value={draft}
            placeholder={`Message ${other.name}`}
            maxLength={1000}
            data-testid="composer"
            onChange={onInput}
          />
          <button
            className="icon-button send-button"
            type="submit"
            title="Send"
            data-testid="send"
            disabled={!draft.trim() && !file}
          >
            <svg width="18" height="18" viewBox="0 0 24 24" fill="currentColor">
              <path d="M3 20l18-8L3 4v6l12 2-12 2z" />
            </svg>
          </button>
        </div>
      </form>
    </section>
  );
}
