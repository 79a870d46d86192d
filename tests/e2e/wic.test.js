'use strict';
// The WIC in headless Chromium against the whole stack (stack.py): logins
// and visitors, registration up to the S-CSCF, a call between two WICs
// with media, callees that are not reachable, a tampered token, a foreign
// Origin, reloads that take the session back, a dropped WebSocket. The tests run in order and
// share alice's and bob's pages.
// Screenshots of the main states go to $E2E_ARTIFACTS.

const assert = require('node:assert/strict');
const { frame, foreignSite, waitFor } = require('./harness');

const DOMAIN = 'ims.example.com';
const ALICE_IMPU = `sip:alice@${DOMAIN}`;  // her own, from LDAP (tests/integration/ldap/seed.ldif)

const f = frame();
let alice;
let bob;

function assertRegisteredInCore(impu) {
  const record = f.stack.registration(impu);
  assert.ok(record, `${impu} is not registered at the S-CSCF`);
  // Through the eP-CSCF: its Path (core side) names the WIC's WebSocket.
  assert.match(record, new RegExp(`127\\.0\\.0\\.1:${f.stack.info.core_port};lr;received=`),
    `${impu}'s registration has no Path through the eP-CSCF:\n${record}`);
  return record;
}

f.test('the page offers a login and a visitor form', {}, async () => {
  const w = await f.wic('first-visit');
  for (const id of ['#login-form', '#username', '#password', '#login-button', '#anon-form', '#anon-name',
    '#anon-email', '#anon-button'])
    assert.ok(await w.visible(id), `${id} is not shown`);
  assert.equal(await w.visible('#session'), false);
  await w.screenshot('01-admission');
  await w.close();
});

f.test('a wrong password is refused and nobody is admitted', {}, async () => {
  const w = await f.wic('wrong-password');
  await w.login('alice', 'not-her-password');
  const e = await w.waitError('wrong_password');
  assert.ok(e.text.length > 0);
  assert.equal(await w.visible('#session'), false);
  await w.close();
});

f.test('alice logs in with her own IMPU and registers through the eP-CSCF', {}, async () => {
  alice = await f.wic('alice');
  await alice.login('alice', 'alice-secret');
  await alice.waitRegistered();
  assert.equal(await alice.impu(), ALICE_IMPU);
  assert.ok(await alice.regCount() >= 1);
  assert.ok(Number(await alice.attr('#token-expires', 'data-epoch')) > Date.now() / 1000,
    '#token-expires is not in the future');
  assertRegisteredInCore(ALICE_IMPU);
  await alice.screenshot('02-registered');
});

f.test('bob logs in, gets an IMPU from the staff pool and registers', {}, async () => {
  bob = await f.wic('bob');
  await bob.login('bob', 'bob-secret');
  await bob.waitRegistered();
  const impu = await bob.impu();
  assert.match(impu, new RegExp(`^sip:desk-[123]@${DOMAIN.replace(/\./g, '\\.')}$`));
  const lease = f.stack.lease(impu);
  assert.equal(lease.pool, 'staff');
  assert.equal(lease.state, 'leased');
  assert.equal(Number(await bob.attr('#lease-expires', 'data-epoch')), lease.expires_at);
  assertRegisteredInCore(impu);
});

f.test('an anonymous visitor admitted by the hook registers with an acme-visitors IMPU', {}, async () => {
  const w = await f.wic('visitor');
  await w.visitor('Ann Visitor', 'ann@example.com');
  await w.waitRegistered();
  const impu = await w.impu();
  assert.match(impu, /^sip:web-[^@]{12}@ims\.example\.com$/);
  const lease = f.stack.lease(impu);
  assert.equal(lease.pool, 'acme-visitors');
  assert.equal(lease.state, 'leased');
  assertRegisteredInCore(impu);
  await w.close();
});

f.test('a reloaded page takes its session back: the same IMPU, registered again from the same device', {},
  async () => {
    const w = await f.wic('reloaded');
    await w.visitor('Rita Reload', 'rita@example.com');
    await w.waitRegistered();
    const impu = await w.impu();
    const lease = f.stack.lease(impu);
    const contacts = (record) => (record.match(/Address: /g) || []).length;
    assert.equal(contacts(assertRegisteredInCore(impu)), 1);
    // Leases count whole seconds: let one pass, so that the renewal shows.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await w.reload();
    await w.waitRegistered();
    assert.equal(await w.impu(), impu);
    const after = f.stack.lease(impu);
    assert.equal(after.state, 'leased');
    assert.equal(after.holder, lease.holder, 'the lease changed hands on reload');
    assert.ok(after.expires_at > lease.expires_at, 'the lease was not renewed');
    // The reloaded page registered the same Contact: its old binding was
    // replaced, not joined by a second one.
    const record = assertRegisteredInCore(impu);
    assert.equal(contacts(record), 1, record);
    // After logout a reload shows the forms: nothing to take back.
    await w.page.click('#logout-button');
    await w.page.waitForSelector('#admission', { state: 'visible' });
    const refreshes = [];
    w.page.on('request', (req) => {
      if (req.url().includes('/api/v1/refresh'))
        refreshes.push(req.url());
    });
    await w.reload();
    await w.page.waitForSelector('#login-form', { state: 'visible' });
    // The resume is over when the forms' buttons are usable again.
    await w.page.waitForFunction(() => !document.getElementById('login-button').disabled);
    assert.deepEqual(refreshes, [], 'the page tried to resume a session it had logged out of');
    assert.equal((await w.state()).view, 'admission');
    assert.equal(await w.visible('#session'), false);
    assert.equal(f.stack.lease(impu).state, 'quarantine');
    await w.close();
  });

f.test('the eP-CSCF drops the WebSocket: the WIC reconnects, takes a fresh token and registers again, lease kept',
  { timeout: 60000 }, async () => {
    const w = await f.wic('reconnected');
    await w.visitor('Ray Connect', 'ray@example.com');
    await w.waitRegistered();
    const impu = await w.impu();
    const lease = f.stack.lease(impu);
    const before = await w.regCount();
    // The page's connection: the port of the received= in the Path of its
    // registration, which ws.dump lists with the connection's id.
    const portOf = (record) => Number(/;received=sip:127\.0\.0\.1:(\d+)/.exec(record)[1]);
    const port = portOf(assertRegisteredInCore(impu));
    const dump = f.stack.kamcmd('epcscf', 'ws.dump');
    const id = new RegExp(`(\\d+): wss:127\\.0\\.0\\.1:${port} `).exec(dump);
    assert.ok(id, `no WebSocket from port ${port} in ws.dump:\n${dump}`);
    const wwsfd = f.stack.mark('wwsfd');
    f.stack.kamcmd('epcscf', 'ws.close', id[1]);
    await waitFor(async () => (await w.regCount()) > before
      && (await w.attr('#reg-state', 'data-state')) === 'registered', 'the WIC to register again', 40000);
    assert.equal(await w.impu(), impu);
    const record = assertRegisteredInCore(impu);
    assert.notEqual(portOf(record), port, 'registered again on the old connection?');
    assert.equal((record.match(/Address: /g) || []).length, 1, record);
    const after = f.stack.lease(impu);
    assert.equal(after.holder, lease.holder);
    assert.ok(after.expires_at >= lease.expires_at, 'the lease was not renewed');
    assert.ok(f.stack.logSince('wwsfd', wwsfd).includes(` impu ${impu}`), 'no fresh token for the new connection');
    assert.equal(await w.error(), null);
    await w.close();
  });

f.test('a visitor who leaves the form empty is refused with the hook\'s reason and gets no IMPU', {}, async () => {
  const before = f.stack.leases('acme-visitors').length;
  const w = await f.wic('empty-form');
  await w.page.click('#anon-button');
  const e = await w.waitError('not_eligible');
  // The personal-information hook's own words (pool-config/hooks/personal-info).
  assert.match(e.text, /please give your name/i);
  assert.equal(await w.visible('#session'), false);
  assert.equal(await w.impu(), '');
  assert.equal(f.stack.leases('acme-visitors').length, before, 'a lease was made for a refused visitor');
  await w.screenshot('03-not-eligible');
  await w.close();
});

f.test('alice calls bob, bob answers, media flows both ways, alice hangs up', { timeout: 90000 }, async () => {
  const bobImpu = await bob.impu();
  const scscf = f.stack.mark('scscf');
  // alice's page claims to be someone else in From, as a forged client would.
  await alice.page.evaluate(() => window.wic.claimNextCallFrom('ceo', 'The CEO'));
  await alice.call(bobImpu);
  await alice.waitCall(['calling', 'ringing']);
  await bob.waitCall('incoming');
  assert.ok(await bob.visible('#incoming'), '#incoming is not shown');
  // The caller as the eP-CSCF asserts it: alice's registered IMPU, nothing else.
  assert.strictEqual(await bob.text('#incoming-from'), await alice.impu());
  await alice.waitCall('ringing');
  await bob.screenshot('04-incoming-call');
  await bob.page.click('#answer-button');
  await alice.waitCall('connected');
  await bob.waitCall('connected');
  await waitFor(async () => (await alice.mediaFlowing()) && (await bob.mediaFlowing()),
    'media to flow both ways', 30000, 500);
  // Both videos play something (the fake camera's picture).
  for (const w of [alice, bob]) {
    const playing = await w.page.evaluate(() => {
      const v = document.getElementById('remote-video');
      return !!v.srcObject && v.readyState >= 2;
    });
    assert.ok(playing, `${w.name}'s #remote-video shows nothing`);
  }
  await alice.screenshot('05-call-connected');
  await bob.screenshot('05-call-connected-callee');
  // The INVITE went through the S-CSCF (the core found bob through his Path).
  assert.match(f.stack.logSince('scscf', scscf), new RegExp(`scscf: INVITE \\S+ to ${bobImpu.replace(/[.+]/g, '\\$&')}`));
  await alice.page.click('#hangup-button');
  await alice.waitCall('ended');
  await bob.waitCall('ended');
  assert.match(f.stack.logSince('scscf', scscf), /scscf: BYE /);
  await alice.screenshot('06-call-ended');
  // Both stay registered for what follows.
  assert.equal(await alice.attr('#reg-state', 'data-state'), 'registered');
  assert.equal(await bob.attr('#reg-state', 'data-state'), 'registered');
});

f.test('calls to a leased but unregistered IMPU and to a free IMPU get 480: not reachable', { timeout: 60000 },
  async () => {
    const leased = f.stack.wwsfctl('lease', 'acquire', '--pool', 'customers', '--holder', 'e2e-nobody-registers');
    assert.equal(leased.state, 'leased');
    const free = `sip:+15550109999@${DOMAIN}`;
    assert.equal(f.stack.lease(free).state, 'free');
    for (const target of [leased.impu, free]) {
      assert.equal(f.stack.registration(target), null);
      const scscf = f.stack.mark('scscf');
      await alice.call(target);
      const e = await alice.waitError('callee_unreachable');
      assert.ok(e.text.length > 0);
      await alice.waitCall(['failed', 'ended']);
      assert.ok(f.stack.logSince('scscf', scscf).includes(`to ${target}`), `the INVITE to ${target} did not reach the S-CSCF`);
      if (target === free)
        await alice.screenshot('07-callee-unreachable');
    }
  });

f.test('a tampered token gets 401 at the eP-CSCF and the page says registration was refused', {}, async () => {
  const w = await f.wic('tampered');
  await w.page.evaluate(() => window.wic.tamperNextToken());
  const epcscf = f.stack.mark('epcscf');
  await w.login('carol', 'carol-secret');
  await w.page.waitForSelector('#session', { state: 'visible' });
  await w.waitState('reg-state', 'failed', 20000);
  await w.waitError('registration_refused');
  const impu = await w.impu();
  assert.match(impu, /^sip:\+1555010\d{4}@/);         // carol: the customers pool
  assert.match(f.stack.logSince('epcscf', epcscf), /REGISTER from \S+ refused: 401/);
  assert.equal(f.stack.registration(impu), null, `${impu} got registered with a tampered token`);
  await w.screenshot('08-registration-refused');
  await w.close();
});

async function openWebSocket(page, uri) {
  return page.evaluate((u) => new Promise((resolve) => {
    let ws;
    try {
      ws = new WebSocket(u, 'sip');
    } catch (e) {
      resolve(`exception: ${e.message}`);
      return;
    }
    const timer = setTimeout(() => resolve('timeout'), 10000);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.close();
      resolve('open');
    };
    ws.onerror = () => {
      clearTimeout(timer);
      resolve('error');
    };
  }), uri);
}

f.test('a page from a foreign Origin cannot open the WebSocket to the eP-CSCF', {}, async () => {
  const site = await foreignSite(f.stack, '<!doctype html><title>elsewhere</title><p>another site</p>');
  try {
    const w = await f.wic('origin-check');
    // From the WWSF's own page the handshake succeeds...
    assert.equal(await openWebSocket(w.page, f.stack.info.epcscf_uri), 'open');
    // ...from another origin (another https server here) it is refused.
    const epcscf = f.stack.mark('epcscf');
    await w.page.goto(site.url);
    assert.equal(await w.page.evaluate(() => window.location.origin), site.url.replace(/\/$/, ''));
    assert.equal(await openWebSocket(w.page, f.stack.info.epcscf_uri), 'error');
    await waitFor(() => /WebSocket from \S+ refused/.test(f.stack.logSince('epcscf', epcscf)),
      'the eP-CSCF to log the refused handshake', 5000);
    await w.close();
  } finally {
    site.server.close();
  }
});

f.test('two tabs of one browser keep their own sessions, refresh them and call each other', { timeout: 90000 },
  async () => {
    // One browser context: one cookie jar for both tabs, as in the demo's
    // walk-through (alice in one tab, a visitor in another).
    const one = await f.wic('tab-carol');
    await one.login('carol', 'carol-secret');
    await one.waitRegistered();
    const two = await f.wic('tab-visitor', { tabOf: one });
    await two.visitor('Tab Visitor', 'tab@example.com');
    await two.waitRegistered();
    const impuOne = await one.impu(), impuTwo = await two.impu();
    assert.notEqual(impuOne, impuTwo);
    // Each tab refreshes its token and re-registers: each keeps its own IMPU
    // (with one session per browser the first tab would get the second's).
    for (const w of [one, two, one]) {
      const before = await w.regCount();
      const impu = await w.impu();
      await w.page.evaluate(() => window.wic.reregister());
      await waitFor(async () => (await w.regCount()) > before, `${w.name} to re-register`, 20000);
      assert.equal(await w.impu(), impu);
      assert.equal(await w.attr('#reg-state', 'data-state'), 'registered');
    }
    // Reloaded, each tab takes back its own session, not the browser's newest.
    for (const [w, impu] of [[one, impuOne], [two, impuTwo]]) {
      await w.reload();
      await w.waitRegistered();
      assert.equal(await w.impu(), impu, `${w.name} took another session back`);
    }
    assertRegisteredInCore(impuOne);
    assertRegisteredInCore(impuTwo);
    await one.call(impuTwo);
    await two.waitCall('incoming');
    await two.page.click('#answer-button');
    await one.waitCall('connected');
    await two.waitCall('connected');
    await two.page.click('#hangup-button');
    await one.waitCall('ended');
    await two.waitCall('ended');
    await two.close();
    await one.close();
  });
