'use strict';
// Re-registration with short lifetimes: tokens of 12 s, checked by the
// eP-CSCF with a 2 s leeway (a token reused past its life would be refused),
// leases of 30 s, REGISTER expiry 15 s (?expires=15; the S-CSCF accepts
// down to 10 s). JsSIP refreshes 5 s before expiry, so every 10 s the WIC
// fetches a fresh token (which renews the lease) and re-registers, with no
// user action. Asked to re-register over and over, the WIC meets the
// eP-CSCF's per-address throttle (REGISTER_RATE 4 per 10 s here, so that a
// slow machine still goes over it): 503 with
// Retry-After, "busy" on the page, and registered again after the wait,
// with no user action. After logout the core no longer has the IMPU.

const assert = require('node:assert/strict');
const { frame, waitFor } = require('./harness');

const EXPIRES = 15;
const RE_REGISTRATIONS = 3;

const f = frame({ tokenTtl: '12s', leaseTtl: '30s', quarantine: '60s', minExpires: 10, tokenLeeway: 2,
  registerRate: 4, rateUnit: 10 });

f.test(`the WIC re-registers ${RE_REGISTRATIONS} times with fresh tokens, renewing its lease, then logs out`,
  { timeout: 180000 }, async () => {
    const w = await f.wic('bob', { expires: EXPIRES });
    await w.login('bob', 'bob-secret');
    await w.waitRegistered();
    const impu = await w.impu();
    const first = f.stack.lease(impu);
    assert.equal(first.state, 'leased');
    let count = await w.regCount();
    let tokenExp = Number(await w.attr('#token-expires', 'data-epoch'));
    let leaseExp = first.expires_at;
    const seen = [];
    for (let i = 0; i < RE_REGISTRATIONS; i++) {
      const before = count;
      count = await waitFor(async () => {
        const n = await w.regCount();
        const st = await w.attr('#reg-state', 'data-state');
        if (st === 'failed')
          throw new Error(`registration failed after ${n} REGISTERs: ${JSON.stringify(await w.error())}`);
        return n > before ? n : 0;
      }, `re-registration ${i + 1}`, (EXPIRES + 10) * 1000, 250);
      assert.equal(await w.attr('#reg-state', 'data-state'), 'registered');
      // A fresh token each time, and the lease renewed with it.
      const newTokenExp = Number(await w.attr('#token-expires', 'data-epoch'));
      const lease = f.stack.lease(impu);
      seen.push({ count, token_exp: newTokenExp, lease_exp: lease.expires_at });
      assert.ok(newTokenExp > tokenExp, `no fresh token before REGISTER #${count}: ${JSON.stringify(seen)}`);
      assert.equal(lease.state, 'leased');
      assert.equal(lease.holder, first.holder);
      assert.ok(lease.expires_at > leaseExp, `the lease was not renewed before REGISTER #${count}: `
        + `${JSON.stringify(seen)}`);
      assert.equal(Number(await w.attr('#lease-expires', 'data-epoch')), lease.expires_at);
      tokenExp = newTokenExp;
      leaseExp = lease.expires_at;
      assert.ok(f.stack.registration(impu), `${impu} is not registered at the S-CSCF after REGISTER #${count}`);
    }
    process.stderr.write(`re-registrations: ${JSON.stringify(seen)}\n`);
    // Every REGISTER reached the S-CSCF through the eP-CSCF with its own token.
    const accepted = f.stack.log('epcscf').split('\n').filter((l) => l.includes(`REGISTER of ${impu} `)
      && l.includes('accepted'));
    assert.ok(accepted.length >= RE_REGISTRATIONS + 1, `the eP-CSCF accepted ${accepted.length} REGISTERs`);
    await w.screenshot('09-re-registered');

    // A burst of re-registrations from this address: the eP-CSCF answers 503
    // with Retry-After once over its rate; the page says the network is busy
    // and registers again by itself after the wait.
    let busy = null;
    for (let i = 0; i < 16 && !busy; i++) {
      const n = await w.regCount();
      await w.page.evaluate(() => window.wic.reregister());
      busy = await waitFor(async () => {
        const e = await w.error();
        if (e && e.code === 'network' && /busy/i.test(e.text))
          return e;
        return (await w.regCount()) > n ? 'answered' : null;
      }, `REGISTER #${i + 1} of the burst to be answered`, 10000, 50);
      if (busy === 'answered')
        busy = null;
    }
    assert.ok(busy, 'the eP-CSCF never throttled the burst');
    assert.equal(await w.attr('#reg-state', 'data-state'), 'registering');
    await w.screenshot('10-network-busy');
    const throttledAt = await w.regCount();
    await waitFor(async () => (await w.attr('#reg-state', 'data-state')) === 'registered'
      && (await w.regCount()) > throttledAt && (await w.error()) === null,
    'the WIC to register again after Retry-After', 90000, 250);
    assert.ok(f.stack.registration(impu), `${impu} is not registered at the S-CSCF after the wait`);

    await w.page.click('#logout-button');
    await w.page.waitForSelector('#login-form', { state: 'visible' });
    await waitFor(() => f.stack.registration(impu) === null, `${impu} to leave the S-CSCF`, 10000);
    const after = f.stack.lease(impu);
    assert.notEqual(after.state, 'leased', `the lease is still held after logout: ${JSON.stringify(after)}`);
  });
