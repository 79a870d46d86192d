'use strict';
// A minimal page over the WWSF API: admission, the identity it gives, refresh
// and logout. The WebRTC client (JsSIP) replaces it in a later step.

const $ = (id) => document.getElementById(id);

const MESSAGES = {
  invalid_credentials: 'Wrong username or password.',
  not_eligible: null, // the hook's own reason is shown
  pool_exhausted: 'All identities are in use right now. Please try again in a few minutes.',
  too_many_requests: 'Too many attempts. Please wait a little and try again.',
  ldap_unavailable: 'Logging in is not possible right now. Please try again later.',
  hook_unavailable: 'Visitor access is not possible right now. Please try again later.',
  no_session: 'Your session has ended. Please log in again.',
  lease_lost: 'Your identity was withdrawn. Please log in again.',
};

function showError(body) {
  const text = (body && MESSAGES[body.error]) || (body && body.detail) || 'Something went wrong.';
  $('error').textContent = text;
  $('error').hidden = false;
}

async function call(path, payload) {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-WWSF-Request': '1' },
    body: JSON.stringify(payload || {}),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw body;
  return body;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : 'as long as your account has it';
}

function showIdentity(r) {
  $('error').hidden = true;
  $('impu').textContent = r.impu;
  $('impi').textContent = r.impi;
  $('expires').textContent = when(r.expires_at);
  $('lease').textContent = when(r.lease_expires_at);
  $('epcscf').textContent = r.epcscf_uri;
  $('admission').hidden = true;
  $('identity').hidden = false;
}

async function run(fn) {
  try {
    showIdentity(await fn());
  } catch (e) {
    showError(e);
  }
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  run(() => call('/api/v1/login', { username: f.username.value, password: f.password.value }));
  f.password.value = '';
});

$('anonymous').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  run(() => call('/api/v1/anonymous', { evidence: { name: f.name.value, email: f.email.value } }));
});

$('refresh').addEventListener('click', () => run(() => call('/api/v1/refresh')));

$('logout').addEventListener('click', async () => {
  try {
    await call('/api/v1/logout');
  } catch (e) {
    // the session may have ended already: the page resets either way
  }
  $('identity').hidden = true;
  $('admission').hidden = false;
});
