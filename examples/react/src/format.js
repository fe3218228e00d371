// Small display helpers shared by the components.

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

const startOfDay = (ms) => new Date(ms).setHours(0, 0, 0, 0);

export const timeOf = (ms) => clock.format(ms);

/** "14:05" today, "Yesterday", "3 Mar" before. */
export function shortDate(ms, now = Date.now()) {
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86400000);
  if (days <= 0) return clock.format(ms);
  if (days === 1) return 'Yesterday';
  return day.format(ms);
}

/** "Today", "Yesterday", "3 Mar": the separators between days of messages. */
export function dayLabel(ms, now = Date.now()) {
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86400000);
  return days <= 0 ? 'Today' : days === 1 ? 'Yesterday' : day.format(ms);
}

/** "last seen just now", "last seen 5 min ago", "last seen today at 14:05", ... */
export function lastSeen(ms, now = Date.now()) {
  if (!ms) return 'offline';
  const minutes = Math.floor((now - ms) / 60000);
  if (minutes < 1) return 'last seen just now';
  if (minutes < 60) return `last seen ${minutes} min ago`;
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86400000);
  if (days <= 0) return `last seen today at ${clock.format(ms)}`;
  if (days === 1) return `last seen yesterday at ${clock.format(ms)}`;
  return `last seen ${day.format(ms)}`;
}

export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const colors = ['#6366f1', '#ec4899', '#f59e0b', '#10b981', '#0ea5e9', '#8b5cf6', '#ef4444'];
export const avatarColor = (id) => colors[Number(id) % colors.length];
