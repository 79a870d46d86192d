// The WIC's entry point: admission (login or visitor form), or the session
// this tab had before a reload, then one Phone per session until logout.
// Query parameters:
//   ?expires=N  REGISTER expiry in seconds (default 600; tests use short ones)
//   ?debug      JsSIP's own log in the console (SIP messages included)

import * as api from './api.js';
import { Phone, tamperTokensFromNowOn, claimNextCallFrom, enableDebugLog } from './phone.js';
import * as ui from './ui.js';

const { $ } = ui;

const DEFAULT_EXPIRES = 600;

function registerExpires(params) {
  const n = Number(params.get('expires'));
  // JsSIP's floor is 10 s; a day is more than any registrar grants.
  return Number.isInteger(n) && n >= 10 && n <= 86400 ? n : DEFAULT_EXPIRES;
}

const params = new URLSearchParams(window.location.search);
const expires = registerExpires(params);
if (params.has('debug'))
  enableDebugLog();

let phone = null;

function startSession(grant) {
  const p = new Phone({ grant, expires, renewGrant: api.refresh });
  phone = p;
  p.addEventListener('registration', ({ detail }) => {
    ui.renderRegistration(detail.state, detail.count);
    if (detail.state === 'registered')
      ui.clearError(['network', 'registration_refused']);
  });
  p.addEventListener('grant', ({ detail }) => ui.renderGrant(detail.grant));
  p.addEventListener('call', ({ detail }) => ui.renderCall(detail.state, detail.text, detail.peer));
  p.addEventListener('media', ({ detail }) => ui.renderMedia(detail.local, detail.remote));
  p.addEventListener('problem', ({ detail }) => ui.showError(detail));
  p.addEventListener('sessionover', ({ detail }) => {
    endSession(p, false).then(() => ui.showError(detail));
  });
  ui.clearError();
  ui.renderGrant(grant);
  ui.renderRegistration('connecting', 0);
  ui.renderCall('idle', 'No call', '');
  ui.showView('session');
  p.start();
}

async function endSession(p, logout) {
  if (phone !== p)
    return;
  await p.stop();
  if (logout) {
    try {
      await api.logout();
    } catch (e) {
      // The session may have ended already: the page resets either way.
    }
  }
  if (phone === p)
    phone = null;
  ui.resetSession();
  ui.showView('admission');
}

async function admit(button, fetchGrant) {
  ui.clearError();
  ui.busy(button, true);
  try {
    startSession(await fetchGrant());
  } catch (e) {
    ui.showError(ui.apiProblem(e));
  } finally {
    ui.busy(button, false);
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const username = $('username').value;
  const password = $('password').value;
  $('password').value = '';
  admit($('login-button'), () => api.login(username, password));
});

$('anon-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  // No browser-side checks: the eligibility hook decides, and its reason
  // is what the user reads.
  admit($('anon-button'), () => api.admitAnonymous($('anon-name').value, $('anon-email').value));
});

$('call-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!phone)
    return;
  ui.clearError();
  phone.call($('call-target').value);
});

$('hangup-button').addEventListener('click', () => phone && phone.hangup());
$('answer-button').addEventListener('click', () => {
  ui.clearError();
  if (phone)
    phone.answer();
});
$('decline-button').addEventListener('click', () => phone && phone.decline());

$('logout-button').addEventListener('click', async () => {
  const button = $('logout-button');
  ui.busy(button, true);
  try {
    ui.clearError();
    if (phone)
      await endSession(phone, true);
  } finally {
    ui.busy(button, false);
  }
});

// A reloaded page takes back the session its tab had (api.resume()): the
// same IMPU, registered again from the same device (phone.js tabDevice()).
// The forms' buttons wait for its answer, so that two sessions do not start
// at once.
// A refusal that may pass (no network, throttled, busy) is tried again a
// few times, the forms usable meanwhile: the session may well still stand.
const RESUME_RETRY_MS = [5000, 15000, 30000];

async function resumeSession(attempt = 0) {
  // Only the first try holds the buttons: later ones must not free a button
  // that an admission under way holds.
  const buttons = attempt === 0 ? [$('login-button'), $('anon-button')] : [];
  buttons.forEach((b) => ui.busy(b, true));
  try {
    const grant = await api.resume();
    if (grant && !phone)
      startSession(grant);
  } catch (e) {
    if (phone)
      return;
    ui.showError(ui.apiProblem(e));
    const passing = e.code === 'network' || e.status === 429 || e.status >= 500;
    if (passing && attempt < RESUME_RETRY_MS.length)
      setTimeout(() => {
        if (!phone)
          resumeSession(attempt + 1);
      }, RESUME_RETRY_MS[attempt]);
  } finally {
    buttons.forEach((b) => ui.busy(b, false));
  }
}

resumeSession();

// For the end-to-end tests (and a curious user's console); the contract is
// in web/README.md.
window.wic = Object.freeze({
  state() {
    const grant = phone && phone.grant;
    return {
      view: ui.currentView(),
      impu: grant ? grant.impu : null,
      registration: phone ? phone.registrationState : 'unregistered',
      registrations: phone ? phone.registrationCount : 0,
      call: phone ? phone.callState : 'idle',
      error: ui.currentError(),
      tokenExpiresAt: grant ? grant.expiresAt : null,
      leaseExpiresAt: grant ? grant.leaseExpiresAt : null,
    };
  },
  mediaFlowing() {
    return phone ? phone.mediaFlowing() : Promise.resolve(false);
  },
  tamperNextToken() {
    tamperTokensFromNowOn();
    if (phone)
      phone.reapplyToken();
  },
  reregister() {
    return phone ? phone.reregister() : Promise.resolve();
  },
  claimNextCallFrom(user, displayName) {
    claimNextCallFrom(user, displayName);
  },
});
