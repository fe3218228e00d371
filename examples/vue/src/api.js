// The backend's HTTP API. Like Echo's axios interceptor, every request carries the page's
// WebSocket id as `X-Socket-ID`, so the backend can broadcast with `toOthers()`: this page
// already shows what it just did and must not receive it a second time.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(path, { token, socketId, method = 'GET', json, form } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (socketId) headers['X-Socket-ID'] = socketId;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // multipart; the browser sets the boundary
  }
  const res = await fetch(path, { method, headers, body });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data?.error ?? res.statusText);
  return data;
}

/** Sign in as one of the demo users: `{ token, user }`. */
export function login(userId) {
  return request('/api/login', { method: 'POST', json: { user_id: userId } });
}

/** Requests as the signed-in user. `socketId()` returns the SDK's current socket id. */
export function createApi(token, socketId) {
  const opts = () => ({ token, socketId: socketId() });
  return {
    get: (path) => request(path, opts()),
    post: (path, json) => request(path, { ...opts(), method: 'POST', json }),
    upload: (path, form) => request(path, { ...opts(), method: 'POST', form }),
    download: (path, name) => download(path, name, token),
  };
}

/** Saves an attachment under `name`. The file needs the token like any other request, which a
 * plain link cannot send: it is fetched, then handed to the browser as a blob download. */
async function download(path, name, token) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    throw new ApiError(res.status, data?.error ?? res.statusText);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  // The click starts the download; the blob can go once the browser has taken it.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
