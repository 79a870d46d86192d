// The WWSF's HTTP API (README.md, "wwsfd"): admission by login or as an
// anonymous visitor, token refresh and logout. Every admission answers a
// "grant": the token, the IMS identity it carries and where the eP-CSCF is.

/** A refusal from the WWSF ({"error","detail"}), or code 'network' when no
 * answer came at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail || '';
  }
}

// This tab's session among those of the browser's cookie (each tab may hold
// its own: alice in one, a visitor in another). The WWSF names it in every
// admission's session_tag; refresh and logout send it back in
// X-WWSF-Request so that the WWSF picks this tab's session, not the newest.
// The tag is kept in the tab's sessionStorage (which a reload keeps and
// other tabs do not see), so that a reloaded page takes its session back
// (resume()); the cookie, HttpOnly, is still what proves the session.
let sessionTag = '1';
const TAG_KEY = 'wwsf.session_tag';
const TAG_SYNTAX = /^[A-Za-z0-9_-]{12}$/;

// sessionStorage may be refused (storage disabled): the page works without
// it, only a reload then starts over.
function storage() {
  try {
    return window.sessionStorage;
  } catch (e) {
    return null;
  }
}

function rememberTag(tag) {
  sessionTag = tag;
  try {
    storage()?.setItem(TAG_KEY, tag);
  } catch (e) {
    // full or refused: see storage()
  }
}

function forgetTag() {
  sessionTag = '1';
  try {
    storage()?.removeItem(TAG_KEY);
  } catch (e) {
    // see storage()
  }
}

async function post(path, payload) {
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      // refresh and logout insist on X-WWSF-Request: a cross-site form cannot
      // send it, so the session cookie alone cannot be abused (CSRF). The
      // admissions ignore it.
      headers: { 'Content-Type': 'application/json', 'X-WWSF-Request': sessionTag },
      body: JSON.stringify(payload || {}),
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  const body = await res.json().catch(() => null);
  if (!res.ok)
    throw new ApiError(res.status, (body && body.error) || `http_${res.status}`, body && body.detail);
  if (!body)
    throw new ApiError(res.status, 'bad_reply', 'the server answered something that is not JSON');
  return body;
}

function grant(body) {
  if (typeof body.token !== 'string' || typeof body.impu !== 'string' || typeof body.epcscf_uri !== 'string')
    throw new ApiError(200, 'bad_reply', 'the server answered without a token');
  if (typeof body.session_tag === 'string' && TAG_SYNTAX.test(body.session_tag))
    rememberTag(body.session_tag);
  return {
    token: body.token,
    impu: body.impu,
    impi: body.impi,
    expiresAt: body.expires_at,
    leaseExpiresAt: body.lease_expires_at ?? null, // null: the user's own identity, no lease
    epcscfUri: body.epcscf_uri,
    anonymous: !!body.anonymous,
  };
}

export async function login(username, password) {
  return grant(await post('/api/v1/login', { username, password }));
}

export async function admitAnonymous(name, email) {
  return grant(await post('/api/v1/anonymous', { evidence: { name, email } }));
}

// Refusals of refresh that mean the session is gone for good.
const SESSION_GONE = new Set(['no_session', 'lease_lost']);

/** A fresh token for the same IMPU; the lease is renewed too. */
export async function refresh() {
  try {
    return grant(await post('/api/v1/refresh'));
  } catch (e) {
    if (e instanceof ApiError && SESSION_GONE.has(e.code))
      forgetTag();
    throw e;
  }
}

/** After a reload: the grant of the session this tab had (a fresh token for
 * the same IMPU, the lease renewed), or null when it had none or the WWSF
 * no longer holds it. Other failures (network, busy) are thrown. */
export async function resume() {
  let tag = null;
  try {
    tag = storage()?.getItem(TAG_KEY);
  } catch (e) {
    // see storage()
  }
  if (!tag || !TAG_SYNTAX.test(tag))
    return null;
  sessionTag = tag;
  try {
    return await refresh();
  } catch (e) {
    if (e instanceof ApiError && SESSION_GONE.has(e.code))
      return null;
    throw e;
  }
}

export async function logout() {
  try {
    await post('/api/v1/logout');
  } finally {
    forgetTag();
  }
}
