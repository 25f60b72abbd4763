// The server's JSON API (the token travels in the cookie the first page load set).
export async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { error: text }; }
  return { status: response.status, ok: response.ok, body };
}

export const post = (path, value) => api(path, { method: "POST", body: JSON.stringify(value) });
export const rawUrl = (path) => `/api/raw?path=${encodeURIComponent(path)}`;
