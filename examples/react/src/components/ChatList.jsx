import { shortDate } from '../format.js';
import Avatar from './Avatar.jsx';

function preview(chat, me) {
  const m = chat.last_message;
  if (!m) return 'No messages yet';
  const text = m.body || (m.attachment ? `📎 ${m.attachment.name}` : '');
  return m.user_id === me.id ? `You: ${text}` : text;
}

export default function ChatList({ chats, me, openChatId, online, now, onSelect }) {
  return (
    <ul className="chat-list">
      {chats.map((chat) => (
        <li
          key={chat.id}
          className={`chat-item${chat.id === openChatId ? ' active' : ''}${chat.unread > 0 ? ' unread' : ''}`}
          data-testid="chat-item"
          data-chat-with={chat.other.name}
          onClick={() => onSelect(chat.id)}
        >
          <Avatar user={chat.other} size={44} online={online.has(chat.other.id)} />
          <div className="chat-item-body">
            <div className="chat-item-top">
              <span className="chat-item-name">{chat.other.name}</span>
              {chat.last_message && <span className="chat-item-time">{shortDate(chat.last_message.created_at, now)}</span>}
            </div>
            <div className="chat-item-bottom">
              <span className="chat-item-preview">{preview(chat, me)}</span>
              {chat.unread > 0 && (
                <span className="badge" data-testid="unread">
                  {chat.unread}
                </span>
              )}
            </div>
          </div>
        </li>
      ))}
    </ul>
  );
}
