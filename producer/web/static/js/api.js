// The one door to the API: same-origin cookies, the CSRF token on every change, errors as messages.

export const CSRF_HEADER = 'X-CSRF-Token';
// Every voice's implicit style, its enrollment reference (contracts.ENROLLMENT_STYLE on the server).
export const ENROLLMENT_STYLE = 'enrollment';
const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let csrfToken = null;
const expiredListeners = new Set();

export function setCsrf(token) { csrfToken = token; }

// Called when a request that needed the session is refused with 401 (expired or signed out elsewhere).
export function onSessionExpired(fn) { expiredListeners.add(fn); return () => expiredListeners.delete(fn); }

// FastAPI errors are {"detail": "..."} or, for validation, {"detail": [{loc, msg}, ...]}.
export async function errorMessage(response) {
  let detail = null;
  try { detail = (await response.json()).detail; } catch { /* not JSON */ }
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== 'body').join('.')}: ${d.msg}`).join('; ');
  }
  return `${response.status} ${response.statusText || 'error'}`;
}

// request(method, path, {json, body, headers, signal, raw}): decoded JSON, null for 204, or the
// Response itself with raw: true (streams, files). Throws ApiError with the server's message.
export async function request(method, path, options = {}) {
  const headers = new Headers(options.headers || {});
  let body = options.body;
  if (options.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(options.json);
  }
  if (CHANGES.has(method) && csrfToken) headers.set(CSRF_HEADER, csrfToken);
  if (!headers.has('Accept')) headers.set('Accept', 'application/json');
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin', signal: options.signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
  if (!response.ok) {
    const message = await errorMessage(response);
    if (response.status === 401 && !path.startsWith('/v1/sessions')) expiredListeners.forEach((fn) => fn(message));
    throw new ApiError(response.status, message);
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const api = {
  request,
  get: (path, options) => request('GET', path, options),
  post: (path, json, options) => request('POST', path, { ...options, json }),
  patch: (path, json, options) => request('PATCH', path, { ...options, json }),
  put: (path, json, options) => request('PUT', path, { ...options, json }),
  del: (path, options) => request('DELETE', path, options),
  // multipart uploads: the browser sets the boundary, so no Content-Type here
  upload: (path, formData, options) => request('POST', path, { ...options, body: formData }),
  raw: (path, options) => request(options?.method || 'GET', path, { ...options, raw: true }),

  async signIn(credentials) {
    const session = await request('POST', '/v1/sessions', { json: credentials });
    setCsrf(session.csrf_token);
    return session;
  },
  async currentSession() {
    try {
      const session = await request('GET', '/v1/sessions/current');
      setCsrf(session.csrf_token);
      return session;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      throw err;
    }
  },
  async signOut() {
    try { await request('DELETE', '/v1/sessions/current'); } finally { setCsrf(null); }
  },
};

// The allowed values of a request field, read from the server's own OpenAPI document, so the page
// never re-types a vocabulary the server defines (languages, formats).
let openapi = null;
export async function schemaEnum(schema, field) {
  openapi = openapi || request('GET', '/openapi.json');
  const prop = (await openapi).components?.schemas?.[schema]?.properties?.[field] || {};
  const options = prop.enum || (prop.anyOf || []).flatMap((p) => p.enum || []);
  return { values: options, fallback: prop.default };
}
