// Two-factor sign-in in the console: a user enrols on My account (QR code shown, the secret
// read off the page, the first code computed here with Node's crypto HMAC as an app would),
// sees the ten recovery codes once, signs out, and signs in again: the password leads to a
// code page, a wrong code is refused, the right one opens the session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  BASE, assertSignInPage, assertSignedIn, bodyText, clickAndLoad, flow, launch, makeUser,
  menuLink, newSession, signIn, uniq, visit,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let buffer = 0, bits = 0;
  const out = [];
  for (const c of text) {
    buffer = (buffer << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; out.push((buffer >>> bits) & 0xff); }
  }
  return Buffer.from(out);
}

/** RFC 6238 code of `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const word = mac.readUInt32BE(o) & 0x7fffffff;
  return String(word % 1_000_000).padStart(6, '0');
}

test('My account: enrol with the QR page, then sign-in asks for the code after the password', async (t) => {
  const username = uniq('tess');
  const password = 'tess-browser-password-1';
  await makeUser(username, password, `/${username}`);
  const s = await newSession(browser);
  const { page } = s;
  const step = flow(t);
  let secret;

  await step('enrol: QR code, secret, first code, recovery codes once', async () => {
    await signIn(page, username, password);
    await clickAndLoad(page, menuLink(page, 'My account'));
    await clickAndLoad(page, page.getByRole('button', { name: 'Set up two-factor sign-in', exact: true }));
    await page.locator('#totp-qr').waitFor();
    await visit(s, 'two-factor-enrol');
    secret = base32Decode((await page.locator('#totp-secret').innerText()).trim());
    await page.getByLabel('Code from the app', { exact: true }).fill(totp(secret));
    await clickAndLoad(page, page.getByRole('button', { name: 'Turn on', exact: true }));
    assert.equal(await page.locator('#recovery-codes li').count(), 10, await bodyText(page));
    await assertSignedIn(page);
  });

  await step('sign out; the password alone leads to the code page; a wrong code is refused', async () => {
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign out', exact: true }));
    await assertSignInPage(page);
    await page.getByLabel('Username', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in', exact: true }));
    const code = page.getByLabel(/Code from your authenticator app/);
    await code.waitFor();
    await code.fill(totp(secret) === '000000' ? '111111' : '000000');
    await clickAndLoad(page, page.getByRole('button', { name: 'Verify', exact: true }));
    await page.getByText(/wrong or was already used/).first().waitFor();
  });

  await step('the right code opens the session', async () => {
    await page.getByLabel(/Code from your authenticator app/).fill(totp(secret, 1));
    await clickAndLoad(page, page.getByRole('button', { name: 'Verify', exact: true }));
    await assertSignedIn(page);
    await page.goto(`${BASE}/account`);
    await page.getByRole('button', { name: 'Turn off two-factor sign-in', exact: true }).waitFor();
  });
});
