// Hostile names render as text: a user named `<script>alert(1)</script>` (refused by the
// username rules, and the refusal must echo it inertly; the same string as a key name and as
// a Users search), and a file named `"><img src=x onerror=alert(1)>` uploaded on Files and
// shown in the listing and in History. No dialog may fire and no element may be injected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_PASSWORD, ADMIN_USER, BASE, addKey, api, bodyText, clickAndLoad, launch, makeUser,
  menuLink, newSession, rowWith, signIn, uniq, visit, watchDialogs,
} from './lib.mjs';

const SCRIPT = '<script>alert(1)</script>';
const IMG = '"><img src=x onerror=alert(1)>';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** Nothing the hostile strings would create exists in the DOM, and no dialog fired. */
async function assertInert(page, dialogs, where) {
  assert.deepEqual(dialogs, [], `a dialog fired on ${where}`);
  const injected = await page.evaluate(() => ({
    scripts: [...document.scripts].filter((s) => s.textContent.includes('alert(1)')).length,
    imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
    handlers: [...document.querySelectorAll('*')].filter((e) => e.hasAttribute('onerror')).length,
  }));
  assert.deepEqual(injected, { scripts: 0, imgs: 0, handlers: 0 }, `markup injected on ${where}`);
}

test('admin pages: a user named <script>alert(1)</script> and such a key name render as text', async () => {
  const s = await newSession(browser);
  const { page } = s;
  const dialogs = watchDialogs(page);
  await signIn(page, ADMIN_USER, ADMIN_PASSWORD);
  await clickAndLoad(page, menuLink(page, 'Users'));
  const form = page.locator('form').filter({ has: page.getByLabel('Site admin', { exact: true }) });
  await form.getByLabel('Username', { exact: true }).fill(SCRIPT);
  await form.getByLabel('Password', { exact: true }).fill('hostile-password-1');
  await clickAndLoad(page, form.getByRole('button'));
  await assertInert(page, dialogs, 'the create-user refusal');
  const text = await bodyText(page);
  assert.match(text, /username/i, `no refusal message: ${text}`);
  const echoed = await page.evaluate((s) => document.body.innerText.includes(s)
    || [...document.querySelectorAll('input')].some((i) => i.value === s), SCRIPT);
  if (echoed) await visit(s, 'users-refusal');
  assert.ok(!(await api('GET', '/users')).some((u) => u.username.includes('<')), 'the hostile user was created');

  // The Users search (GET form) reflects the query: inert too.
  const res = await page.goto(`${BASE}/users?q=${encodeURIComponent(SCRIPT)}`);
  assert.ok(res.status() < 500);
  assert.equal(await page.getByLabel('Search users', { exact: true }).inputValue(), SCRIPT, 'the search box keeps the query as text');
  await assertInert(page, dialogs, 'the Users search');

  // A key with the hostile name, on My account, then on API keys.
  await clickAndLoad(page, menuLink(page, 'My account'));
  // Key names are unique site-wide: the hostile string plus this run's suffix.
  const keyName = `${SCRIPT}${uniq('')}`;
  await addKey(page, { name: keyName });
  await assertInert(page, dialogs, 'the show-once page');
  await clickAndLoad(page, menuLink(page, 'My account'));
  await page.getByText(keyName, { exact: true }).first().waitFor();
  await assertInert(page, dialogs, 'My account');
  await clickAndLoad(page, menuLink(page, 'API keys'));
  await page.getByText(keyName, { exact: true }).first().waitFor();
  await assertInert(page, dialogs, 'API keys');
  await s.context.close();
});

test('files: a file named "><img src=x onerror=alert(1)> renders as text in Files and History', async () => {
  const username = uniq('mallory');
  const password = 'mallory-browser-password-1';
  await makeUser(username, password, `/${username}`);
  const s = await newSession(browser);
  const { page } = s;
  const dialogs = watchDialogs(page);
  await signIn(page, username, password);
  await clickAndLoad(page, menuLink(page, 'Files'));
  const homeLink = page.getByRole('link', { name: username, exact: true });
  if (!decodeURIComponent(new URL(page.url()).pathname).includes(username) && (await homeLink.count()) > 0) {
    await clickAndLoad(page, homeLink.first());
  }
  await page.getByLabel('Files', { exact: true }).setInputFiles({ name: IMG, mimeType: 'text/plain', buffer: Buffer.from('hostile name\n') });
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  // Chromium sends `"` in a multipart filename as %22 (WHATWG form encoding); either
  // spelling is fine as long as it is listed as text.
  const sent = page.getByRole('link', { name: IMG, exact: true })
    .or(page.getByRole('link', { name: IMG.replace('"', '%22'), exact: true })).first();
  await sent.waitFor({ timeout: 30_000 }).catch(async () => { throw new Error(`the upload is not listed: ${await bodyText(page)}`); });
  await page.waitForLoadState('load');
  await assertInert(page, dialogs, 'Files after the upload');
  // Give it the exact hostile name through the Rename form (urlencoded: no escaping).
  const uploadedName = await sent.innerText();
  if (uploadedName !== IMG) {
    await clickAndLoad(page, rowWith(page, uploadedName).first().getByRole('link', { name: 'Rename', exact: true }));
    await assertInert(page, dialogs, 'the rename page');
    await page.getByLabel('New name', { exact: true }).fill(IMG);
    await clickAndLoad(page, page.getByRole('button', { name: 'Rename', exact: true }));
  }
  const link = page.getByRole('link', { name: IMG, exact: true }).first();
  await link.waitFor().catch(async () => { throw new Error(`the exact name is not listed: ${await bodyText(page)}`); });
  await assertInert(page, dialogs, 'Files');
  await visit(s, 'files-hostile-name');
  // Download keeps a safe name and the bytes.
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.ok(!/[\/\\]/.test(download.suggestedFilename()), `unsafe download name ${download.suggestedFilename()}`);
  // The delete confirmation names it inertly too (then Cancel).
  await clickAndLoad(page, rowWith(page, IMG).first().getByRole('link', { name: 'Delete', exact: true }));
  await page.getByText(IMG).first().waitFor();
  await assertInert(page, dialogs, 'the delete confirmation');
  await clickAndLoad(page, page.getByRole('link', { name: 'Cancel', exact: true }));
  await clickAndLoad(page, menuLink(page, 'History'));
  await rowWith(page, IMG).first().waitFor();
  await assertInert(page, dialogs, 'History');
  await s.context.close();
});
