// The admin's API keys page: every site-wide and user key with its owner, filter by owner or
// name (GET form), create a site-wide key (show once), delete another user's key (with the
// confirmation), and a key's row links to that key's History.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_PASSWORD, ADMIN_USER, BASE, addKey, api, clickAndLoad, deleteWithConfirmation, launch,
  makeUser, menuLink, newSession, rowWith, signIn, uniq, visit,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('API keys: list with owners, filter, site-wide key, delete any key, key history link', async () => {
  const owner = uniq('gina');
  const user = await makeUser(owner, 'gina-browser-password-1', `/${owner}`);
  const userKeyName = uniq('gina-key');
  const userKey = await api('POST', '/api_keys', { user_id: user.id, name: userKeyName });
  // Use the key once so that it has history.
  const used = await fetch(`${BASE}/api/rest/v1/api_key`, { headers: { 'X-FilesAPI-Key': userKey.key } });
  assert.equal(used.status, 200);

  const s = await newSession(browser);
  const { page } = s;
  await signIn(page, ADMIN_USER, ADMIN_PASSWORD);
  await clickAndLoad(page, menuLink(page, 'API keys'));
  assert.equal(new URL(page.url()).pathname, '/keys');
  const row = rowWith(page, userKeyName).first();
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(owner), 'the key row names its owner');
  await visit(s, 'api-keys');

  // Filter by owner (GET form): only that owner's keys.
  const ownerFilter = page.getByLabel('Owner', { exact: true });
  await ownerFilter.fill(owner);
  await clickAndLoad(page, page.locator('form').filter({ has: ownerFilter }).getByRole('button').first());
  assert.ok(page.url().includes(encodeURIComponent(owner)) || page.url().includes(owner), 'the filter is a GET form');
  const rows = await page.locator('tbody tr').allInnerTexts();
  assert.ok(rows.length >= 1 && rows.every((r) => r.includes(owner)), `owner filter:\n${rows.join('\n')}`);

  // Filter by name.
  await page.goto(`${BASE}/keys`);
  const nameFilter = page.getByLabel('Key name', { exact: true });
  await nameFilter.fill(userKeyName);
  await clickAndLoad(page, page.locator('form[method="get" i]').filter({ has: nameFilter }).getByRole('button').first());
  const byName = await page.locator('tbody tr').allInnerTexts();
  assert.ok(byName.length === 1 && byName[0].includes(userKeyName), `name filter:\n${byName.join('\n')}`);

  // The key's History link.
  await clickAndLoad(page, rowWith(page, userKeyName).first().getByRole('link', { name: /history/i }).first());
  assert.equal(new URL(page.url()).pathname, '/history');
  assert.equal(new URL(page.url()).searchParams.get('key'), String(userKey.id));
  const hist = await page.locator('tbody tr').allInnerTexts();
  assert.ok(hist.length >= 1, 'the key has no history rows');
  await visit(s, 'history-by-key');

  // A site-wide key from this page.
  await page.goto(`${BASE}/keys`);
  const siteName = uniq('site-wide');
  const secret = await addKey(page, { name: siteName, permissionSet: 'readonly' });
  await visit(s, 'api-keys-show-once');
  const site = (await api('GET', '/api_keys')).find((k) => k.name === siteName);
  assert.ok(site, 'the site-wide key exists');
  assert.equal(site.user_id ?? null, null, 'the key is site-wide');
  const res = await fetch(`${BASE}/api/rest/v1/api_key`, { headers: { 'X-FilesAPI-Key': secret } });
  assert.equal(res.status, 200, 'the site-wide secret works');

  // Delete the user's key (any key, for an admin).
  await page.goto(`${BASE}/keys`);
  await deleteWithConfirmation(page, rowWith(page, userKeyName).first(), () => visit(s, 'api-keys-delete-confirm'));
  await page.goto(`${BASE}/keys`);
  assert.equal(await rowWith(page, userKeyName).count(), 0, 'the deleted key is still listed');
  const dead = await fetch(`${BASE}/api/rest/v1/api_key`, { headers: { 'X-FilesAPI-Key': userKey.key } });
  assert.equal(dead.status, 401, 'the deleted key still works');
  await s.context.close();
});
