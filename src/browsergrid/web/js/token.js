// Access tokens in the pages (docs/security.md): a page takes ?token= from its own address and presents it,
// in the WebSocket URL it opens (a browser cannot set headers on a WebSocket) and as a Bearer header on fetches.

// The token in a page's query string (location.search), or null.
export function tokenFrom(search) {
  const token = new URLSearchParams(search ?? '').get('token');
  return token ? token : null;
}

// `url` with ?token= set to `token`; `url` unchanged when there is no token (or it is no URL).
export function withToken(url, token) {
  if (!token) return url;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  parsed.searchParams.set('token', token);
  return parsed.href;
}

// `url` with the token's value hidden, for what the page shows and logs.
export function hideToken(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (!parsed.searchParams.has('token')) return url;
  parsed.searchParams.set('token', '***');
  return parsed.href;
}

// Fetch headers that present `token`; none without one.
export function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}
