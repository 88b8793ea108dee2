// The admin flow of issue 13: a site admin signs in, creates a user on Users, grants that
// user a folder on the user's Folders tab, creates a key for the user in the API Keys section
// of the Authentication tab, reads the secret from the `API key` field and copies it (the
// clipboard must hold it). Then real clients sign in with that key: OpenSSH `sftp` (sshpass)
// and curl over WebDAV, each writing and reading back a file in the granted folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADMIN_PASSWORD, ADMIN_USER, BASE, addKey, api, bodyText, clickAndLoad, copySecret, davCurl,
  launch, menuLink, newSession, rowWith, scratch, sftpBatch, sha256, signIn, uniq, visit, WEBDAV,
  flow,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('admin: create a user, grant a folder, make a key for them, use it over SFTP and WebDAV', async (t) => {
  const s = await newSession(browser);
  const step = flow(t);
  const { page } = s;
  const username = uniq('bob');
  const password = 'bob-browser-password-1';
  const folder = `/${username}-share`;
  const keyName = uniq('bob-sync');
  let secret;
  let userPage;

  await step('sign in and see the admin menu', async () => {
    await signIn(page, ADMIN_USER, ADMIN_PASSWORD);
    for (const name of ['My account', 'API keys', 'Users', 'History', 'Files']) {
      assert.equal(await menuLink(page, name).count(), 1, `menu link ${name} for an admin`);
    }
  });

  await step('create the user on Users', async () => {
    await clickAndLoad(page, menuLink(page, 'Users'));
    assert.match(new URL(page.url()).pathname, /^\/users\/?$/);
    await visit(s, 'users');
    const form = page.locator('form').filter({ has: page.getByLabel('Site admin', { exact: true }) });
    assert.equal(await form.count(), 1, 'one create-user form (with a Site admin checkbox)');
    await form.getByLabel('Username', { exact: true }).fill(username);
    await form.getByLabel('Password', { exact: true }).fill(password);
    assert.equal(await form.getByLabel('Site admin', { exact: true }).isChecked(), false);
    await clickAndLoad(page, form.getByRole('button'));
    if (!/^\/users\/\d+/.test(new URL(page.url()).pathname)) {
      // Back on the list: the new user is there; open their page.
      await clickAndLoad(page, page.getByRole('link', { name: username, exact: true }));
    }
    assert.match(new URL(page.url()).pathname, /^\/users\/\d+/, `not on a user page: ${await bodyText(page)}`);
    await page.getByText(username).first().waitFor();
    userPage = page.url();
    const users = await api('GET', '/users');
    const made = users.find((u) => u.username === username);
    assert.ok(made, 'the user exists in the store (REST)');
    assert.equal(made.site_admin, false);
  });

  await step('grant a folder on the Folders tab', async () => {
    await clickAndLoad(page, page.getByRole('link', { name: 'Folders', exact: true }));
    const form = page.locator('form').filter({ has: page.getByLabel('Level', { exact: true }) });
    assert.equal(await form.count(), 1, 'one grant form (Folder + Level)');
    await form.getByLabel('Folder', { exact: true }).fill(folder);
    await form.getByLabel('Level', { exact: true }).selectOption('full');
    await clickAndLoad(page, form.getByRole('button'));
    await rowWith(page, folder).first().waitFor();
    await visit(s, 'user-folders');
  });

  await step('add a key for the user on the Authentication tab; Copy puts it on the clipboard', async () => {
    await clickAndLoad(page, page.getByRole('link', { name: 'Authentication', exact: true }));
    await page.getByRole('heading', { name: 'API Keys' }).first().waitFor();
    await visit(s, 'user-authentication');
    secret = await addKey(page, { name: keyName });
    await visit(s, 'key-show-once');
    assert.equal(await copySecret(page), secret, 'the clipboard holds the secret after Copy');
    // The secret is shown once: the user's page no longer has it.
    await page.goto(userPage);
    assert.ok(!(await page.content()).includes(secret), 'the secret is on a later page');
    await rowWith(page, keyName).first().waitFor();
  });

  const dir = scratch(username);
  const keys = () => api('GET', `/api_keys`).then((all) => all.filter((k) => k.name === keyName));

  await step('the key signs in over SFTP (OpenSSH sftp) into the granted folder', async () => {
    const [key] = await keys();
    assert.ok(key, 'the key exists (REST)');
    const local = join(dir, 'sftp-up.bin');
    const data = Buffer.alloc(300_000).map((_, i) => (i * 31 + 7) & 0xff);
    writeFileSync(local, data);
    const out = sftpBatch(`@api-${key.id}`, secret, [
      `put sftp-up.bin ${folder}/sftp-up.bin`,
      `ls -l ${folder}`,
      `get ${folder}/sftp-up.bin sftp-down.bin`,
    ], dir);
    assert.match(out, /sftp-up\.bin/);
    assert.equal(sha256(readFileSync(join(dir, 'sftp-down.bin'))), sha256(data));
    assert.throws(() => sftpBatch(`@api-${key.id}`, 'not-the-secret-at-all', ['ls'], dir), 'a wrong secret is refused');
  });

  await step('the key signs in over WebDAV (curl) into the granted folder', async () => {
    const [key] = await keys();
    const login = `@api-${key.id}:${secret}`;
    writeFileSync(join(dir, 'dav-up.txt'), `written over WebDAV by ${username}\n`);
    const put = davCurl(['-u', login, '-T', 'dav-up.txt', `${WEBDAV()}${folder}/dav-up.txt`], dir);
    assert.ok([201, 204].includes(put.code), `PUT answered ${put.code}`);
    const get = davCurl(['-u', login, `${WEBDAV()}${folder}/dav-up.txt`], dir);
    assert.equal(get.code, 200);
    assert.equal(get.body, `written over WebDAV by ${username}\n`);
    const sftpFile = davCurl(['-u', login, `${WEBDAV()}${folder}/sftp-up.bin`, '-I'], dir);
    assert.equal(sftpFile.code, 200, 'the file SFTP wrote is there over WebDAV');
    const bad = davCurl(['-u', `@api-${key.id}:wrong-secret`, `${WEBDAV()}${folder}/dav-up.txt`], dir);
    assert.equal(bad.code, 401);
  });

  await s.context.close();
});
