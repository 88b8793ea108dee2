// Smoke: the console answers at `/` with the sign-in form (Username, Password, Sign in), with
// the security headers the console promises; a wrong password, an unknown user and an API
// key all get the same refusal with the form shown again; the right password signs in with
// an HttpOnly, SameSite=Strict session cookie.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newSession, assertSignInPage, assertSignedIn, signIn, ADMIN_USER, ADMIN_PASSWORD, visit, bodyText, api } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('/ shows the sign-in form with the console headers', async () => {
  const s = await newSession(browser);
  const res = await s.page.goto(`${BASE}/`);
  assert.ok(res.ok(), `GET / answered ${res.status()}`);
  await assertSignInPage(s.page);
  const h = await res.allHeaders(); // the final document (after any redirect to the form)
  assert.match(h['content-security-policy'] || '', /default-src 'self'/);
  assert.match(h['content-security-policy'] || '', /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'] || '', /unsafe-inline/);
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['referrer-policy'], 'no-referrer');
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.match(h['cache-control'] || '', /no-store/);
  await visit(s, 'sign-in');
  await s.context.close();
});

test('a wrong password is refused and the form comes back; the right one signs in', async () => {
  const s = await newSession(browser);
  await s.page.goto(`${BASE}/`);
  await s.page.getByLabel('Username', { exact: true }).fill(ADMIN_USER);
  await s.page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await s.page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await s.page.waitForLoadState('load');
  await assertSignInPage(s.page);
  const refused = await bodyText(s.page);
  // Unknown user: the same refusal text as a wrong password.
  await s.page.getByLabel('Username', { exact: true }).fill('no-such-user-anywhere');
  await s.page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await s.page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await s.page.waitForLoadState('load');
  await assertSignInPage(s.page);
  assert.equal(await bodyText(s.page), refused, 'unknown user and wrong password must read the same');
  // An API key (login @api-<id>, the secret as password) does not sign in to the console.
  const key = await api('GET', '/api_key');
  await s.page.getByLabel('Username', { exact: true }).fill(`@api-${key.id}`);
  await s.page.getByLabel('Password', { exact: true }).fill(process.env.ADMIN_KEY_SECRET);
  await s.page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await s.page.waitForLoadState('load');
  await assertSignInPage(s.page);
  assert.equal(await bodyText(s.page), refused, 'an API key login must get the same refusal');
  await visit(s, 'sign-in-refused');
  await signIn(s.page, ADMIN_USER, ADMIN_PASSWORD);
  await assertSignedIn(s.page);
  const cookies = await s.context.cookies(BASE);
  assert.ok(cookies.length >= 1, 'no session cookie');
  for (const c of cookies) {
    assert.equal(c.httpOnly, true, `cookie ${c.name} is not HttpOnly`);
    assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is not SameSite=Strict`);
  }
  await s.context.close();
});
