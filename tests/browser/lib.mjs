// Shared helpers for the browser suite: the server run.sh started (addresses in the
// environment), Debian's chromium through playwright-core, sign-in, fixtures over the REST
// API (admin key), real SFTP/WebDAV clients, screenshots and page weights.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite through tests/browser/run.sh`);
  return v;
}

export const API_ADDR = need('API_ADDR');
export const BASE = `http://${API_ADDR}`;
export const ORIGIN = BASE;
export const ADMIN_USER = need('ADMIN_USER');
export const ADMIN_PASSWORD = need('ADMIN_PASSWORD');
export const ARTIFACTS = need('ARTIFACTS');
export const WORK = need('WORK');
export const SHOTS = join(ARTIFACTS, 'screenshots');
export const WEIGHTS_FILE = join(ARTIFACTS, 'page-weights.jsonl');
export const WEIGHT_LIMIT = 100 * 1024;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A name for a user or key of one test. run.sh starts a fresh server for every run and each
 * prefix is used once per run, so there the plain prefix is used (readable screenshots);
 * against a long-lived server (BROWSER_PLAIN_NAMES unset) a unique suffix is added.
 */
export function uniq(prefix) {
  if (process.env.BROWSER_PLAIN_NAMES === '1') return prefix;
  return `${prefix}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/** Starts Debian's chromium headless (no downloaded browser). */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: we run as root. The rest keep chromium off the (closed) network at start.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A fresh browser context (own cookies) at desktop size, with clipboard permissions for the
 * console's origin and the HTTP cache off (so every page's HTML+CSS+JS is fetched and can be
 * weighed). Returns { context, page, weigh }.
 */
export async function newSession(browser, options = {}) {
  const context = await browser.newContext({
    viewport: DESKTOP,
    acceptDownloads: true,
    ...options,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ORIGIN });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const weigh = trackWeights(page);
  page.setDefaultTimeout(30_000);
  return { context, page, weigh };
}

/**
 * Follows the page's main-document loads and the CSS/JS each one pulls. `weigh.current()`
 * waits for every body and returns { url, html, css, js, total } of the last HTML document.
 */
function trackWeights(page) {
  let record = null;
  page.on('response', (response) => {
    const req = response.request();
    const type = req.resourceType();
    if (type === 'document' && req.frame() === page.mainFrame()) {
      const ctype = response.headers()['content-type'] || '';
      if (!ctype.startsWith('text/html')) return; // downloads and the like
      record = { url: response.url(), parts: [] };
      record.parts.push(response.body().then((b) => ['html', b.length], () => ['html', 0]));
    } else if ((type === 'stylesheet' || type === 'script') && record) {
      const kind = type === 'stylesheet' ? 'css' : 'js';
      record.parts.push(response.body().then((b) => [kind, b.length], () => [kind, 0]));
    }
  });
  return {
    async current() {
      await page.waitForLoadState('load');
      assert.ok(record, 'no HTML page has loaded yet');
      const sums = { html: 0, css: 0, js: 0 };
      for (const [kind, n] of await Promise.all(record.parts)) sums[kind] += n;
      return { url: record.url, ...sums, total: sums.html + sums.css + sums.js };
    },
  };
}

/**
 * Records the page the browser shows now under `name`: a screenshot at 1280×800 and one at
 * 390×844 in artifacts/screenshots/, and its HTML+CSS+JS weight (asserted < 100 KB) in
 * artifacts/page-weights.jsonl (run.sh prints the table).
 */
export async function visit(session, name) {
  const { page, weigh } = session;
  const w = await weigh.current();
  mkdirSync(SHOTS, { recursive: true });
  const size = page.viewportSize() || DESKTOP;
  for (const vp of [DESKTOP, PHONE]) {
    await page.setViewportSize(vp);
    await page.screenshot({ path: join(SHOTS, `${name}-${vp.width}x${vp.height}.png`) });
  }
  await page.setViewportSize(size);
  const path = new URL(w.url).pathname;
  appendFileSync(WEIGHTS_FILE, JSON.stringify({ name, path, html: w.html, css: w.css, js: w.js, total: w.total }) + '\n');
  assert.ok(w.total < WEIGHT_LIMIT, `page ${name} (${path}) weighs ${w.total} bytes (HTML ${w.html}, CSS ${w.css}, JS ${w.js}), limit ${WEIGHT_LIMIT}`);
  return w;
}

/** Collects every JS dialog (alert/confirm/prompt) the page opens; dismisses them. */
export function watchDialogs(page) {
  const seen = [];
  page.on('dialog', async (d) => {
    seen.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  return seen;
}

/** Signs in through the sign-in form at `/`; asserts the sign-in worked. */
export async function signIn(page, username, password) {
  await page.goto(`${BASE}/`);
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await Promise.all([
    page.waitForLoadState('load'),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
  ]);
  await assertSignedIn(page);
}

/** The signed-in layout has a Sign out button and no sign-in form. */
export async function assertSignedIn(page) {
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Sign in', exact: true }).count(), 0);
}

/** The sign-in form is what the page shows. */
export async function assertSignInPage(page) {
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Username', { exact: true }).count(), 1);
  assert.equal(await page.getByLabel('Password', { exact: true }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Sign out', exact: true }).count(), 0);
}

/** Clicks and waits for the navigation that the click starts (form submit or link). */
export async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForNavigation(), locator.click()]);
  await page.waitForLoadState('load');
}

/** The first visible message of a refusal/confirmation, as text (for assertion messages). */
export async function bodyText(page) {
  return (await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 600);
}

// ---- fixtures over the REST API (the admin key run.sh made with the CLI) ----

export async function api(method, path, body) {
  const res = await fetch(`${BASE}/api/rest/v1${path}`, {
    method,
    headers: {
      'X-FilesAPI-Key': need('ADMIN_KEY_SECRET'),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A non-admin user with a password and (optionally) one folder grant, made over REST. */
export async function makeUser(username, password, folder, level = 'full') {
  const user = await api('POST', '/users', { username, password });
  if (folder) await api('POST', '/permissions', { user_id: user.id, path: folder, permission: level });
  return user;
}

// ---- real clients ----

const sshOpts = [
  '-oBatchMode=no', '-oStrictHostKeyChecking=no', '-oUserKnownHostsFile=/dev/null',
  '-oLogLevel=ERROR', '-oPubkeyAuthentication=no',
];

/** Runs an OpenSSH `sftp` batch as `login` with `password` (via sshpass). Returns stdout+stderr. */
export function sftpBatch(login, password, batch, cwd) {
  const addr = need('SFTP_ADDR');
  const host = addr.slice(0, addr.lastIndexOf(':'));
  const port = addr.slice(addr.lastIndexOf(':') + 1);
  const batchFile = join(cwd, `batch-${Date.now()}`);
  writeFileSync(batchFile, batch.join('\n') + '\n');
  return execFileSync('sshpass', ['-e', 'sftp', ...sshOpts, '-P', port, '-b', batchFile, `${login}@${host}`], {
    cwd,
    env: { ...process.env, SSHPASS: password },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
}

/** curl against the WebDAV listener; returns { code, body }. */
export function davCurl(args, cwd) {
  const out = execFileSync('curl', ['-sS', '-o', join(cwd, 'dav.body'), '-w', '%{http_code}', ...args], {
    cwd, encoding: 'utf8', timeout: 60_000,
  });
  return { code: Number(out.trim()), body: readFileSync(join(cwd, 'dav.body'), 'utf8') };
}

export const WEBDAV = () => `http://${need('WEBDAV_ADDR')}`;

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** A scratch folder in the run's temp dir. */
export function scratch(name) {
  const dir = join(WORK, 'browser', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---- console forms shared by several flows (labels fixed by issue 13) ----

/** The form that holds the `Permission set` select: the Add key form. */
export function addKeyForm(page) {
  return page.locator('form').filter({ has: page.getByLabel('Permission set', { exact: true }) });
}

/**
 * Fills the Add key form on the current page, clicks Save, and returns the secret from the
 * show-once page (read-only `API key` field + "This key will not be shown again").
 */
export async function addKey(page, { name, expires, folder, permissionSet } = {}) {
  const form = addKeyForm(page);
  assert.equal(await form.count(), 1, 'exactly one Add key form');
  await form.getByLabel('Name', { exact: true }).fill(name);
  if (expires) await form.getByLabel('Expires', { exact: true }).fill(expires);
  if (folder) await form.getByLabel('Folder', { exact: true }).fill(folder);
  if (permissionSet) await form.getByLabel('Permission set', { exact: true }).selectOption(permissionSet);
  await clickAndLoad(page, form.getByRole('button', { name: 'Save', exact: true }));
  return readShowOnce(page);
}

/** On the show-once page: the secret, read-only, with the warning line. */
export async function readShowOnce(page) {
  const field = page.getByLabel('API key', { exact: true });
  await field.waitFor({ timeout: 10_000 }).catch(async () => {
    throw new Error(`no "API key" field after Save; page says: ${await bodyText(page)}`);
  });
  const secret = await field.inputValue();
  assert.ok(secret.length >= 20, `secret looks too short: ${JSON.stringify(secret)}`);
  assert.equal(await field.evaluate((el) => el.readOnly), true, 'the API key field must be read-only');
  await page.getByText('This key will not be shown again').first().waitFor();
  assert.ok(!page.url().includes(secret), 'the secret is in the URL');
  return secret;
}

/** Clicks Copy on the show-once page; returns what the clipboard then holds. */
export async function copySecret(page) {
  await page.evaluate(() => navigator.clipboard.writeText('clipboard-before-copy'));
  await page.getByRole('button', { name: 'Copy', exact: true }).click();
  let got = '';
  for (let i = 0; i < 50; i++) {
    got = await page.evaluate(() => navigator.clipboard.readText());
    if (got !== 'clipboard-before-copy') break;
    await page.waitForTimeout(100);
  }
  return got;
}

/**
 * Clicks the `Delete` control inside `row` and goes through the console's confirmation step
 * (a page of its own under `…/delete`, which works without JavaScript): `shot` records that
 * page, then its `Delete key` / `Delete` button confirms.
 */
export async function deleteWithConfirmation(page, row, shot) {
  const del = row.getByRole('link', { name: 'Delete', exact: true })
    .or(row.getByRole('button', { name: 'Delete', exact: true })).first();
  await clickAndLoad(page, del);
  assert.match(new URL(page.url()).pathname, /\/delete$/, `no confirmation step: ${await bodyText(page)}`);
  if (shot) await shot();
  const confirm = page.getByRole('main').getByRole('button', { name: /^Delete( key)?$/ });
  assert.equal(await confirm.count(), 1, 'one confirming button');
  await clickAndLoad(page, confirm);
}

/** A table row (or list item) that contains `text`. */
export function rowWith(page, text) {
  return page.locator('tr, li').filter({ hasText: text });
}

/** A navigation link in the console's menu. */
export function menuLink(page, name) {
  return page.getByRole('navigation', { name: 'Main', exact: true }).getByRole('link', { name, exact: true });
}

/**
 * Ordered steps of one flow as subtests: once a step fails, the later ones are skipped
 * (they depend on it) instead of each waiting out its own timeout.
 */
export function flow(t) {
  let broken = null;
  return (name, fn) => t.test(name, async (st) => {
    if (broken) {
      st.skip(`skipped: the step "${broken}" failed`);
      return;
    }
    try {
      await fn(st);
    } catch (e) {
      broken = name;
      throw e;
    }
  });
}
