// The page: which view shows, what the user reads. Only attributes, text
// and `hidden` change here (the CSP allows no inline style); the ids and
// data-* attributes are the contract with the end-to-end tests (README.md).

export const $ = (id) => document.getElementById(id);

// ---- errors ----

let shown = { code: '', text: '' };

/** The message in #error now ({code:'', text:''} when none). */
export function currentError() {
  return { ...shown };
}

export function showError({ code, text }) {
  shown = { code, text };
  const el = $('error');
  el.textContent = text;
  el.dataset.code = code;
  el.hidden = false;
}

/** Clears #error; with codes, only if the message shown has one of them. */
export function clearError(codes) {
  if (codes && !codes.includes(shown.code))
    return;
  shown = { code: '', text: '' };
  const el = $('error');
  el.textContent = '';
  el.dataset.code = '';
  el.hidden = true;
}

// The WWSF's error codes in words, with the contract's code (web/README.md).
// The words are those of wwsfd's error registry (src/wwsfd/errors.def; a
// test checks them); a code the registry gives no words falls to the generic
// message below: the user can do nothing about it.
const API_PROBLEMS = {
  invalid_credentials: ['wrong_password', 'Wrong username or password.'],
  no_session: ['other', 'Your session has ended. Please log in again.'],
  lease_lost: ['other', 'Your number was withdrawn. Please log in again.'],
  not_eligible: ['not_eligible', 'You cannot be admitted as a visitor'],
  no_identity: ['other', 'Your account has no number here. Please ask your administrator.'],
  too_many_requests: ['other', 'Too many attempts. Please wait a little and try again.'],
  too_many_leases: ['other', 'You already have as many numbers as you may. Log out elsewhere first.'],
  pool_exhausted: ['pool_full', 'All numbers are in use right now. Please try again in a few minutes.'],
  lease_failed: ['other', 'The service cannot give you a number right now. Please try again later.'],
  hook_unavailable: ['other', 'Visitors cannot be admitted right now. Please try again later.'],
  ldap_unavailable: ['other', 'Logging in is not possible right now. Please try again later.'],
  no_signing_key: ['other', 'The service is not available right now. Please try again later.'],
  too_many_sessions: ['other', 'The service is full right now. Please try again later.'],
  overloaded: ['other', 'The server is busy. Please try again in a moment.'],
  busy: ['other', 'The server is busy. Please try again in a moment.'],
  shutting_down: ['other', 'The service is restarting. Please try again in a moment.'],
};

/** {code, text} for a failed API call (api.ApiError or anything thrown). */
export function apiProblem(e) {
  if (e && e.code === 'network')
    return { code: 'network', text: 'The web server cannot be reached. Check your connection and try again.' };
  const known = e && Object.hasOwn(API_PROBLEMS, e.code) ? API_PROBLEMS[e.code] : null;
  if (known && e.code === 'not_eligible') {
    // The hook's reason ends the sentence.
    return { code: known[0], text: known[1] + (e.detail ? `: ${e.detail}` : '.') };
  }
  if (known)
    return { code: known[0], text: known[1] };
  const why = (e && (e.detail || e.message)) || String(e);
  return { code: 'other', text: `Something went wrong: ${why}` };
}

// ---- views ----

export function showView(view) {
  $('admission').hidden = view !== 'admission';
  $('session').hidden = view !== 'session';
}

export function currentView() {
  return $('session').hidden ? 'admission' : 'session';
}

/** Disables a button while its request runs (no double submissions). */
export function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
}

// ---- the session ----

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString();
}

export function renderGrant(grant) {
  $('impu').textContent = grant.impu;
  const token = $('token-expires');
  token.textContent = when(grant.expiresAt);
  token.dataset.epoch = String(grant.expiresAt);
  const lease = $('lease-expires');
  if (grant.leaseExpiresAt === null) {
    lease.textContent = 'your own number: no end';
    lease.dataset.epoch = '';
  } else {
    lease.textContent = when(grant.leaseExpiresAt);
    lease.dataset.epoch = String(grant.leaseExpiresAt);
  }
}

const REG_TEXT = {
  connecting: 'Connecting to the phone network…',
  registering: 'Registering…',
  registered: 'Registered: you can call and be called',
  unregistered: 'Not registered',
  failed: 'Not registered: the phone network refused',
};

let regState = 'unregistered';
let callState = 'idle';

export function renderRegistration(state, count) {
  regState = state;
  const el = $('reg-state');
  el.dataset.state = state;
  el.textContent = REG_TEXT[state] || state;
  $('reg-count').textContent = String(count);
  renderButtons();
}

const IN_CALL = ['calling', 'ringing', 'incoming', 'connected'];

export function renderCall(state, text, peer) {
  callState = state;
  const el = $('call-state');
  el.dataset.state = state;
  el.textContent = text || 'No call';
  $('incoming').hidden = state !== 'incoming';
  if (state === 'incoming')
    $('incoming-from').textContent = peer || '';
  renderButtons();
}

function renderButtons() {
  $('call-button').disabled = regState !== 'registered' || IN_CALL.includes(callState);
  $('hangup-button').disabled = !['calling', 'ringing', 'connected'].includes(callState);
}

function show(video, stream) {
  if (video.srcObject !== stream)
    video.srcObject = stream;
  // Autoplay may wait for a gesture; the click that started or answered the
  // call usually counts, and a refusal here is not worth an error.
  if (stream)
    video.play().catch(() => {});
}

export function renderMedia(local, remote) {
  show($('local-video'), local || null);
  show($('remote-video'), remote || null);
}

/** Back to the login view with nothing of the last session left on screen. */
export function resetSession() {
  renderRegistration('unregistered', 0);
  renderCall('idle', 'No call', '');
  renderMedia(null, null);
  $('impu').textContent = '';
  for (const id of ['token-expires', 'lease-expires']) {
    $(id).textContent = '';
    $(id).dataset.epoch = '';
  }
  $('call-target').value = '';
}
