// Runs last: reads the page weights the other files recorded (artifacts/page-weights.jsonl,
// one line per page visited: HTML+CSS+JS bytes from the responses, cache off), prints the
// table, and asserts every page < 100 KB and — on a full run — that every console page was
// visited (and so screenshotted at 1280×800 and 390×844).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, SHOTS, WEIGHTS_FILE, WEIGHT_LIMIT } from './lib.mjs';

const EVERY_PAGE = [
  'sign-in', 'my-account', 'my-account-with-keys', 'key-show-once', 'key-delete-confirm',
  'api-keys', 'api-keys-show-once', 'users', 'user-authentication', 'user-folders', 'files',
  'files-after-upload', 'files-folder', 'files-rename', 'files-delete-confirm', 'history',
  'history-by-key', 'forbidden', 'sign-in-refused', 'password-changed',
];

test('page weights (HTML+CSS+JS) < 100 KB, every page screenshotted', () => {
  assert.ok(existsSync(WEIGHTS_FILE), 'no page weights recorded');
  const rows = new Map();
  for (const line of readFileSync(WEIGHTS_FILE, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line);
    rows.set(r.name, r); // the last visit of a name wins
  }
  const table = [['page', 'path', 'HTML', 'CSS', 'JS', 'total']];
  for (const r of [...rows.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    table.push([r.name, r.path, r.html, r.css, r.js, r.total].map(String));
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const text = table.map((row) => row.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ')).join('\n');
  console.log(`\npage weights in bytes (limit ${WEIGHT_LIMIT}):\n${text}\n`);
  writeFileSync(join(ARTIFACTS, 'page-weights.txt'), text + '\n');
  for (const r of rows.values()) assert.ok(r.total < WEIGHT_LIMIT, `${r.name} weighs ${r.total}`);
  if (process.env.BROWSER_FULL_RUN === '1') {
    const missing = EVERY_PAGE.filter((name) => !rows.has(name));
    assert.deepEqual(missing, [], 'pages the suite did not visit');
    for (const name of rows.keys()) {
      for (const size of ['1280x800', '390x844']) {
        assert.ok(existsSync(join(SHOTS, `${name}-${size}.png`)), `no screenshot ${name}-${size}`);
      }
    }
  }
});
