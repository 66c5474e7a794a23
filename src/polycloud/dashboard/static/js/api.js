// The page's only door: the control plane's API under /api/v1, with the session cookie.
// Changes carry the header that the API demands of cookie-authenticated writes (no other site can set it).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-polycloud-dashboard"] = "1";
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    const reason = data && (data.error || data.detail) ? data.error || JSON.stringify(data.detail) : response.statusText;
    throw new ApiError(response.status, reason);
  }
  return data;
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body = {}) => call("POST", path, body),
  del: (path) => call("DELETE", path),
};

export const RANK = { viewer: 0, deployer: 1, admin: 2 };

export function may(who, role) {
  return who && RANK[who.role] >= RANK[role];
}
