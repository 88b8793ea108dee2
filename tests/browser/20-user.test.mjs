// The user flow of issue 13: a (non-admin) user signs in, adds own keys on My account (show
// once + Copy), deletes one with the confirmation step, uploads a 20 MiB file on Files with
// the progress bar, downloads it byte-exact, works with folders (create, open, breadcrumbs,
// rename, delete), and finds the upload and the download in History as their own records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  BASE, addKey, bodyText, clickAndLoad, copySecret, deleteWithConfirmation, launch,
  makeUser, menuLink, newSession, rowWith, scratch, sha256, signIn, uniq, visit,
  flow,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function keyWorks(secret) {
  const res = await fetch(`${BASE}/api/rest/v1/api_key`, { headers: { 'X-FilesAPI-Key': secret } });
  return res.status;
}

test('user: own keys, 20 MiB upload with progress, byte-exact download, History', async (t) => {
  const username = uniq('carol');
  const password = 'carol-browser-password-1';
  const home = `/${username}`;
  await makeUser(username, password, home, 'full');
  const s = await newSession(browser);
  const step = flow(t);
  const { page } = s;
  const dir = scratch(username);

  await step('sign in; the menu has no admin links', async () => {
    await signIn(page, username, password);
    for (const name of ['My account', 'History', 'Files']) {
      assert.equal(await menuLink(page, name).count(), 1, `menu link ${name}`);
    }
    for (const name of ['API keys', 'Users']) {
      assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, `no ${name} link for a non-admin`);
    }
  });

  const keep = uniq('carol-laptop');
  const gone = uniq('carol-old');
  let keepSecret;
  let goneSecret;

  await step('My account: add two keys (show once, Copy)', async () => {
    await clickAndLoad(page, menuLink(page, 'My account'));
    assert.equal(new URL(page.url()).pathname, '/account');
    await visit(s, 'my-account');
    const nextYear = `${new Date().getUTCFullYear() + 1}-06-30`;
    keepSecret = await addKey(page, { name: keep, expires: nextYear, permissionSet: 'readonly' });
    assert.equal(await copySecret(page), keepSecret, 'Copy put the secret on the clipboard');
    assert.equal(await keyWorks(keepSecret), 200, 'the shown secret is a working key');
    await clickAndLoad(page, menuLink(page, 'My account'));
    goneSecret = await addKey(page, { name: gone, folder: `${home}/old` });
    assert.notEqual(goneSecret, keepSecret);
    await clickAndLoad(page, menuLink(page, 'My account'));
    const html = await page.content();
    assert.ok(!html.includes(keepSecret) && !html.includes(goneSecret), 'a secret is on My account');
    const row = rowWith(page, keep).first();
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /readonly/, `the key row shows its permission set: ${text}`);
    assert.match(text, new RegExp(nextYear), `the key row shows its expiry: ${text}`);
    await rowWith(page, gone).first().waitFor();
    await visit(s, 'my-account-with-keys');
  });

  await step('My account: delete a key with the confirmation step', async () => {
    await deleteWithConfirmation(page, rowWith(page, gone).first(), () => visit(s, 'key-delete-confirm'));
    await clickAndLoad(page, menuLink(page, 'My account'));
    assert.equal(await rowWith(page, gone).count(), 0, 'the deleted key is still listed');
    await rowWith(page, keep).first().waitFor();
    assert.equal(await keyWorks(goneSecret), 401, 'the deleted key still works');
    assert.equal(await keyWorks(keepSecret), 200, 'the kept key stopped working');
  });

  const big = join(dir, 'twenty.bin');
  const data = randomBytes(20 * 1024 * 1024);
  writeFileSync(big, data);

  await step('Files: upload 20 MiB with the progress bar', async () => {
    await clickAndLoad(page, menuLink(page, 'Files'));
    assert.match(new URL(page.url()).pathname, /^\/files/);
    // Navigate into the user's folder when the root lists it.
    const homeLink = page.getByRole('link', { name: username, exact: true });
    if (!decodeURIComponent(new URL(page.url()).pathname).includes(username) && (await homeLink.count()) > 0) {
      await clickAndLoad(page, homeLink.first());
    }
    await visit(s, 'files');
    // Every state of every <progress> while the upload runs (the page may reload at the end,
    // so the reports go to the test through a binding, not page state).
    const reports = [];
    await page.exposeBinding('__progressReport', (_src, r) => { reports.push(r); });
    await page.evaluate(() => {
      const report = () => document.querySelectorAll('progress').forEach((p) => {
        window.__progressReport({ value: p.value, max: p.max, hidden: p.hidden || p.offsetParent === null });
      });
      new MutationObserver(report).observe(document, { subtree: true, childList: true, attributes: true });
    });
    await page.getByLabel('Files', { exact: true }).setInputFiles(big);
    const uploaded = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(`${BASE}/files`), { timeout: 120_000 });
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const res = await uploaded;
    assert.ok(res.status() < 400, `upload answered ${res.status()}`);
    await page.waitForLoadState('load');
    await page.getByRole('link', { name: 'twenty.bin', exact: true }).first().waitFor({ timeout: 60_000 });
    assert.ok(reports.some((r) => !r.hidden && r.value > 0), `no <progress> element showed during the upload: ${JSON.stringify(reports.slice(-5))}`);
    const last = reports[reports.length - 1];
    assert.ok(last.max > 0 && last.value === last.max, `the progress bar ended at ${last.value}/${last.max}`);
    const stored = join(process.env.FILEGATE_DATA_DIR || join(process.env.WORK, 'data'), 'files', username, 'twenty.bin');
    if (existsSync(stored)) assert.equal(sha256(readFileSync(stored)), sha256(data), 'the stored file differs');
    await visit(s, 'files-after-upload');
  });

  await step('Files: download it byte-exact', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 120_000 }),
      page.getByRole('link', { name: 'twenty.bin', exact: true }).first().click(),
    ]);
    assert.equal(download.suggestedFilename(), 'twenty.bin');
    const saved = join(dir, 'twenty.down');
    await download.saveAs(saved);
    assert.equal(sha256(readFileSync(saved)), sha256(data), 'the download differs from the upload');
  });

  await step('Files: create a folder, open it, breadcrumbs back, rename and delete a file', async () => {
    const form = page.locator('form').filter({ has: page.getByLabel('Folder name', { exact: true }) });
    await form.getByLabel('Folder name', { exact: true }).fill('reports');
    await clickAndLoad(page, form.getByRole('button', { name: 'Create folder', exact: true }));
    await clickAndLoad(page, page.getByRole('link', { name: 'reports', exact: true }).first());
    assert.match(decodeURIComponent(new URL(page.url()).pathname), /\/reports\/?$/);
    // Upload a small file here (no JS needed for the form; the script may drive it).
    writeFileSync(join(dir, 'note.txt'), 'a small note\n');
    await page.getByLabel('Files', { exact: true }).setInputFiles(join(dir, 'note.txt'));
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByRole('link', { name: 'note.txt', exact: true }).first().waitFor({ timeout: 30_000 });
    await visit(s, 'files-folder');
    // Rename note.txt → renamed.txt.
    const row = rowWith(page, 'note.txt').first();
    const renameField = row.getByLabel('New name', { exact: true });
    if ((await renameField.count()) === 0) {
      await clickAndLoad(page, row.getByRole('link', { name: /Rename/ }).or(row.getByRole('button', { name: /Rename/ })).first());
      await visit(s, 'files-rename');
    }
    const nameField = page.getByLabel('New name', { exact: true }).first();
    await nameField.fill('renamed.txt');
    await clickAndLoad(page, page.locator('form').filter({ has: nameField }).getByRole('button', { name: 'Rename', exact: true }));
    await page.getByRole('link', { name: 'renamed.txt', exact: true }).first().waitFor();
    assert.equal(await page.getByRole('link', { name: 'note.txt', exact: true }).count(), 0);
    // Delete it (confirmation).
    await deleteWithConfirmation(page, rowWith(page, 'renamed.txt').first(), () => visit(s, 'files-delete-confirm'));
    await page.waitForLoadState('load');
    assert.equal(await page.getByRole('link', { name: 'renamed.txt', exact: true }).count(), 0, `still listed: ${await bodyText(page)}`);
    // Breadcrumbs lead back to the user's folder.
    await clickAndLoad(page, page.getByRole('navigation', { name: /breadcrumb/i }).getByRole('link', { name: username, exact: true }));
    await page.getByRole('link', { name: 'twenty.bin', exact: true }).first().waitFor();
  });

  await step('History: the upload and the download are there, as own records', async () => {
    await clickAndLoad(page, menuLink(page, 'History'));
    assert.equal(new URL(page.url()).pathname, '/history');
    await visit(s, 'history');
    const rows = page.locator('tbody tr');
    const texts = await rows.allInnerTexts();
    const path = `${home}/twenty.bin`;
    assert.ok(texts.some((r) => r.includes(path) && /\bcreate\b|upload/i.test(r) && /\bweb\b/.test(r)), `no upload record of ${path}:\n${texts.join('\n')}`);
    assert.ok(texts.some((r) => r.includes(path) && /\bread\b|download/i.test(r) && /\bweb\b/.test(r)), `no download record of ${path}:\n${texts.join('\n')}`);
    const users = await page.locator('tbody tr td:nth-child(2)').allInnerTexts();
    assert.ok(users.length > 0 && users.every((u) => u.trim() === username), `someone else's record in a user's History: ${[...new Set(users)]}`);
    // Newest first: the download came after the upload.
    const up = texts.findIndex((r) => r.includes(path) && /\bcreate\b|upload/i.test(r));
    const down = texts.findIndex((r) => r.includes(path) && /\bread\b|download/i.test(r));
    assert.ok(down < up, 'History is not newest first');
    // The filter form: path prefix narrows to the file's records.
    const prefix = page.getByLabel(/path/i).first();
    if ((await prefix.count()) > 0) {
      await prefix.fill(`${home}/reports`);
      await clickAndLoad(page, page.locator('form').filter({ has: prefix }).getByRole('button').first());
      const filtered = await page.locator('tbody tr').allInnerTexts();
      assert.ok(filtered.length > 0 && filtered.every((r) => r.includes(`${home}/reports`)), `path filter:\n${filtered.join('\n')}`);
    }
  });

  await s.context.close();
});
