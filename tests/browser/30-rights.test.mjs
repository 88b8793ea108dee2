// Rights and sessions: a non-admin gets 403 for /keys and /users (and a user's page) and the
// menu hides those links; a state-changing POST without the CSRF token (or with a wrong one)
// is refused and changes nothing, while the same POST with the page's token works; Sign out
// ends the session (back button → sign-in page; the old cookie no longer works).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_USER, BASE, addKeyForm, api, assertSignInPage, clickAndLoad, launch, makeUser,
  menuLink, newSession, signIn, uniq, visit,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a non-admin: 403 on /keys and /users, menu links hidden', async () => {
  const username = uniq('dave');
  const password = 'dave-browser-password-1';
  await makeUser(username, password, `/${username}`);
  const admin = (await api('GET', '/users')).find((u) => u.username === ADMIN_USER);
  const s = await newSession(browser);
  const { page } = s;
  await signIn(page, username, password);
  assert.equal(await page.getByRole('link', { name: 'API keys', exact: true }).count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Users', exact: true }).count(), 0);
  for (const path of ['/keys', '/users', `/users/${admin.id}`, `/users/${admin.id}/folders`]) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 403, `GET ${path} as a non-admin answered ${res.status()}`);
  }
  await page.goto(`${BASE}/keys`);
  await visit(s, 'forbidden');
  // Admin POSTs straight to the handlers, with this user's own valid CSRF token, are refused.
  await page.goto(`${BASE}/account`);
  const token = await csrfField(page);
  for (const path of ['/users', '/keys']) {
    const res = await page.request.post(`${BASE}${path}`, {
      form: { [token.name]: token.value, username: uniq('sneaky'), password: 'sneaky-password-1', name: 'sneaky' },
      maxRedirects: 0,
    });
    assert.equal(res.status(), 403, `POST ${path} as a non-admin answered ${res.status()}`);
  }
  assert.ok(!(await api('GET', '/users')).some((u) => u.username.startsWith('sneaky')), 'a non-admin made a user');
  await s.context.close();
});

/** The hidden CSRF input of the first state-changing form on the page. */
async function csrfField(page) {
  const field = page.locator('form[method="post" i] input[type="hidden"]').filter({ hasNot: page.locator('[name="_method"]') });
  const fields = await field.evaluateAll((els) => els.map((e) => ({ name: e.name, value: e.value })));
  const token = fields.find((f) => /csrf|token/i.test(f.name));
  assert.ok(token, `no CSRF field in the page's forms: ${JSON.stringify(fields.map((f) => f.name))}`);
  assert.ok(token.value.length >= 16, 'the CSRF token is too short');
  return token;
}

test('CSRF: the Add key POST without the token, or with a wrong one, is refused', async () => {
  const username = uniq('erin');
  const password = 'erin-browser-password-1';
  const user = await makeUser(username, password, `/${username}`);
  const s = await newSession(browser);
  const { page } = s;
  await signIn(page, username, password);
  await page.goto(`${BASE}/account`);
  const form = addKeyForm(page);
  const action = new URL(await form.evaluate((f) => f.action), BASE).href;
  const fields = await form.evaluate((f) => Object.fromEntries(new FormData(f).entries()));
  const token = await csrfField(page);
  assert.equal(fields[token.name], token.value, 'the Add key form carries the token');
  const ownKeys = async () => (await api('GET', `/api_keys?user_id=${user.id}`)).length;
  const before = await ownKeys();

  const missing = { ...fields, name: 'csrf-missing' };
  delete missing[token.name];
  let res = await page.request.post(action, { form: missing, maxRedirects: 0 });
  assert.equal(res.status(), 403, `no token: ${res.status()}`);
  res = await page.request.post(action, { form: { ...fields, name: 'csrf-wrong', [token.name]: 'A'.repeat(token.value.length) }, maxRedirects: 0 });
  assert.equal(res.status(), 403, `wrong token: ${res.status()}`);
  // Also from page script (fetch), as a script on the page would.
  const status = await page.evaluate(async ({ action, missing }) => {
    const r = await fetch(action, { method: 'POST', body: new URLSearchParams(missing), redirect: 'manual' });
    return r.status;
  }, { action, missing: { ...missing, name: 'csrf-fetch' } });
  assert.equal(status, 403, `fetch without token: ${status}`);
  assert.equal(await ownKeys(), before, 'a refused POST made a key');

  // The control: the same POST with the token works (so the 403s above were the token's).
  res = await page.request.post(action, { form: { ...fields, name: 'csrf-ok' }, maxRedirects: 0 });
  assert.equal(res.status(), 200, `with the token: ${res.status()}`);
  assert.match(await res.text(), /This key will not be shown again/);
  assert.equal(await ownKeys(), before + 1);
  await s.context.close();
});

test('Sign out ends the session: back button shows the sign-in page, the old cookie is dead', async () => {
  const username = uniq('frank');
  const password = 'frank-browser-password-1';
  await makeUser(username, password, `/${username}`);
  const s = await newSession(browser);
  const { page } = s;
  await signIn(page, username, password);
  await clickAndLoad(page, menuLink(page, 'My account'));
  const cookies = await s.context.cookies(BASE);
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign out', exact: true }));
  await assertSignInPage(page);
  await page.goBack();
  await page.waitForLoadState('load');
  await assertSignInPage(page);
  await page.goto(`${BASE}/account`);
  await assertSignInPage(page);
  // The cookie from before sign-out, replayed in a fresh browser context, is worthless.
  const replay = await newSession(browser);
  await replay.context.addCookies(cookies);
  await replay.page.goto(`${BASE}/account`);
  await assertSignInPage(replay.page);
  await replay.context.close();
  await s.context.close();
});
