import { avatarColor } from '../format.js';

export default function Avatar({ user, size = 40, online = false }) {
  return (
    <div
      className="avatar"
      style={{ width: size, height: size, fontSize: size * 0.42, background: avatarColor(user.id) }}
      title={user.name}
    >
      {user.name.slice(0, 1).toUpperCase()}
      {online && <span className="dot" data-testid="online-dot" />}
    </div>
  );
}
