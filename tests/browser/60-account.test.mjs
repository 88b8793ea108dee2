// Accounts beyond API keys: a user adds an SSH public key on My account (then signs in with
// it over OpenSSH sftp) and deletes it (then refused); changes their password (the session
// ends, the old password is refused, the new one works). An admin searches Users, disables a
// user (their open session ends at once), switches SFTP off for them (sftp refused, WebDAV
// still fine), re-enables them and resets their password.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADMIN_PASSWORD, ADMIN_USER, BASE, assertSignInPage, assertSignedIn, bodyText, clickAndLoad,
  davCurl, flow, launch, makeUser, menuLink, newSession, rowWith, scratch, sftpBatch, signIn,
  uniq, visit, WEBDAV,
} from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** OpenSSH sftp with a private key only (no password prompt); throws when refused. */
function sftpWithKey(login, keyFile, batch, cwd) {
  const addr = process.env.SFTP_ADDR;
  const port = addr.slice(addr.lastIndexOf(':') + 1);
  const host = addr.slice(0, addr.lastIndexOf(':'));
  return execFileSync('sftp', [
    '-oBatchMode=yes', '-oStrictHostKeyChecking=no', '-oUserKnownHostsFile=/dev/null',
    '-oLogLevel=ERROR', '-oPasswordAuthentication=no', '-oKbdInteractiveAuthentication=no',
    '-oIdentitiesOnly=yes', '-i', keyFile, '-P', port, '-b', '-', `${login}@${host}`,
  ], { cwd, input: batch.join('\n') + '\n', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
}

test('My account: SSH key add (sftp with it) and delete; password change ends the session', async (t) => {
  const username = uniq('hank');
  const password = 'hank-browser-password-1';
  const newPassword = 'hank-browser-password-2';
  await makeUser(username, password, `/${username}`);
  const dir = scratch(username);
  const keyFile = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${username}@laptop`, '-f', keyFile]);
  const publicKey = readFileSync(`${keyFile}.pub`, 'utf8').trim();
  const s = await newSession(browser);
  const { page } = s;
  const step = flow(t);

  await step('add the SSH key; sftp signs in with it', async () => {
    await signIn(page, username, password);
    await clickAndLoad(page, menuLink(page, 'My account'));
    const form = page.locator('form').filter({ has: page.getByLabel('Public key', { exact: true }) });
    await form.getByLabel('Name', { exact: true }).fill('laptop');
    await form.getByLabel('Public key', { exact: true }).fill(publicKey);
    await clickAndLoad(page, form.getByRole('button'));
    await rowWith(page, 'laptop').first().waitFor().catch(async () => { throw new Error(`not listed: ${await bodyText(page)}`); });
    await assertSignedIn(page); // adding one's own key does not end one's own session
    await visit(s, 'my-account-ssh-key');
    const out = sftpWithKey(username, keyFile, ['pwd'], dir);
    assert.match(out, new RegExp(`/${username}`));
  });

  await step('delete the SSH key; sftp with it is refused', async () => {
    await clickAndLoad(page, rowWith(page, 'laptop').first().getByRole('button', { name: 'Delete', exact: true }));
    assert.equal(await rowWith(page, 'laptop').count(), 0, 'the SSH key is still listed');
    assert.throws(() => sftpWithKey(username, keyFile, ['pwd'], dir), 'a deleted SSH key still signs in');
  });

  await step('change the password: signed out, old refused, new works', async () => {
    await clickAndLoad(page, menuLink(page, 'My account'));
    await page.getByLabel('Current password', { exact: true }).fill(password);
    await page.getByLabel('New password', { exact: true }).fill(newPassword);
    await clickAndLoad(page, page.getByRole('button', { name: 'Change password', exact: true }));
    await page.getByText(/password was changed/i).first().waitFor();
    await visit(s, 'password-changed');
    await page.goto(`${BASE}/account`);
    await assertSignInPage(page);
    await page.getByLabel('Username', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in', exact: true }));
    await assertSignInPage(page);
    await signIn(page, username, newPassword);
  });
  await s.context.close();
});

test('Users: search, disable (open session ends), protocol switch, enable, reset password', async (t) => {
  const username = uniq('ivy');
  const password = 'ivy-browser-password-1';
  const reset = 'ivy-browser-password-2';
  const folder = `/${username}`;
  await makeUser(username, password, folder);
  const dir = scratch(username);
  const userSide = await newSession(browser);
  const admin = await newSession(browser);
  const page = admin.page;
  const step = flow(t);

  await step('the admin finds the user with Search users', async () => {
    await signIn(userSide.page, username, password);
    await signIn(page, ADMIN_USER, ADMIN_PASSWORD);
    await clickAndLoad(page, menuLink(page, 'Users'));
    await page.getByLabel('Search users', { exact: true }).fill(username);
    await clickAndLoad(page, page.getByRole('button', { name: 'Search', exact: true }));
    const rows = await page.locator('tbody tr').allInnerTexts();
    assert.ok(rows.length === 1 && rows[0].includes(username), `search:\n${rows.join('\n')}`);
    await visit(admin, 'users-search');
    await clickAndLoad(page, page.getByRole('link', { name: username, exact: true }));
  });

  const save = () => clickAndLoad(page, page.getByRole('button', { name: 'Save settings', exact: true }));

  await step("Disabled: the user's open session ends at once", async () => {
    await page.getByLabel('Disabled', { exact: true }).check();
    await save();
    assert.equal(await page.getByLabel('Disabled', { exact: true }).isChecked(), true);
    await userSide.page.goto(`${BASE}/files/`);
    await assertSignInPage(userSide.page);
    await userSide.page.getByLabel('Username', { exact: true }).fill(username);
    await userSide.page.getByLabel('Password', { exact: true }).fill(password);
    await clickAndLoad(userSide.page, userSide.page.getByRole('button', { name: 'Sign in', exact: true }));
    await assertSignInPage(userSide.page);
  });

  await step('SFTP switched off: sftp refused, WebDAV still works; enabled again', async () => {
    await page.getByLabel('Disabled', { exact: true }).uncheck();
    await page.getByLabel('SFTP', { exact: true }).uncheck();
    await save();
    assert.equal(await page.getByLabel('SFTP', { exact: true }).isChecked(), false);
    assert.equal(await page.getByLabel('WebDAV', { exact: true }).isChecked(), true);
    assert.throws(() => sftpBatch(username, password, ['pwd'], dir), 'sftp signed in with SFTP switched off');
    const dav = davCurl(['-u', `${username}:${password}`, '-X', 'PROPFIND', '-H', 'Depth: 1', `${WEBDAV()}${folder}/`], dir);
    assert.equal(dav.code, 207, `WebDAV PROPFIND answered ${dav.code}`);
    await page.getByLabel('SFTP', { exact: true }).check();
    await save();
    assert.match(sftpBatch(username, password, ['pwd'], dir), new RegExp(folder));
    await signIn(userSide.page, username, password);
  });

  await step("Reset password: the user's session ends; the new password works", async () => {
    await page.getByLabel('New password', { exact: true }).fill(reset);
    await clickAndLoad(page, page.getByRole('button', { name: 'Reset password', exact: true }));
    await userSide.page.goto(`${BASE}/account`);
    await assertSignInPage(userSide.page);
    await signIn(userSide.page, username, reset);
  });
  await userSide.context.close();
  await admin.context.close();
});
