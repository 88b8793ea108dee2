#!/usr/bin/env bash
# Tests apply.sh, check.sh and regen.sh on a copy of patches/ and vendor/ in a temporary
# folder (the repository is not touched): an edit of vendor/ fails the check, regen turns it
# into a new numbered patch with a placeholder header, --into folds a further edit into an
# existing patch without rewriting the others, a conflicting --into changes nothing, and
# apply.sh drops an edit that is in no patch. Run by .ci/run after patches/check.sh.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
t="$(mktemp -d "${TMPDIR:-/tmp}/filegate-selftest.XXXXXX")"
trap 'rm -rf "$t"' EXIT
cp -r "$src/patches" "$src/vendor" "$t/"
cd "$t"
git init -q . && git add -A && git -c user.name=t -c user.email=t@localhost commit -qm base
fail() {
    echo "patches selftest FAILED: $*" >&2
    exit 1
}
snapshot() { git add -A && git -c user.name=t -c user.email=t@localhost commit -qm "$1"; }

crate=libunftp
series="$(basename "$(ls -d patches/$crate-*/)")"
last="$(ls patches/"$series"/[0-9][0-9][0-9][0-9]-*.patch | tail -1)"
next="$(printf '%04d' $((10#$(basename "$last" | cut -c1-4) + 1)))"
file=vendor/$crate/src/lib.rs

# 1. an edit in vendor/ fails the check
echo '// filegate patch: selftest one' >>"$file"
bash patches/check.sh >check.out 2>&1 && fail "check.sh passed with an edited vendor/"
grep -q 'selftest one' check.out || fail "check.sh did not show the edit"

# 2. regen makes it patch $next, with a placeholder; the other patches are unchanged
printf '\nan added item\n' >>vendor/$crate/PATCHES.md
bash patches/regen.sh $crate --name selftest >/dev/null
new="patches/$series/$next-selftest.patch"
[ -f "$new" ] || fail "regen.sh did not write $new"
grep -q 'FILL IN' "$new" || fail "the new patch has no placeholder header"
grep -q 'an added item' "$new" || fail "text added to vendor PATCHES.md is not in the header"
grep -q "$next-selftest.patch" patches/"$series"/PATCHES.md || fail "the index does not list the new patch"
[ -z "$(git status --porcelain -- patches | grep -v -e "$next-selftest" -e PATCHES.md)" ] \
    || fail "regen.sh rewrote other patches"
git diff --quiet -- vendor/$crate/PATCHES.md || fail "vendor PATCHES.md was not restored"
bash patches/check.sh >/dev/null || fail "check.sh fails after regen.sh"
snapshot regen

# 3. --into folds a further edit into that patch and touches no other file in patches/
sed -i 's|// filegate patch: selftest one|// filegate patch: selftest one, amended|' "$file"
bash patches/regen.sh $crate --into "$next" >/dev/null
grep -q 'selftest one, amended' "$new" || fail "--into did not fold the edit"
[ "$(git status --porcelain -- patches)" = " M $new" ] || fail "--into rewrote other patches"
bash patches/check.sh >/dev/null || fail "check.sh fails after --into"
snapshot into

# 4. --into an earlier patch that a later one builds on: refused, nothing changed
sed -i 's|// filegate patch: selftest one, amended|// filegate patch: selftest two|' "$file"
bash patches/regen.sh $crate --into 0 >/dev/null 2>&1 && fail "a conflicting --into succeeded"
[ -z "$(git status --porcelain -- patches)" ] || fail "a refused --into changed patches/"

# 5. apply.sh drops what no patch has
bash patches/apply.sh $crate >/dev/null
grep -q 'selftest two' "$file" && fail "apply.sh kept an edit that is in no patch"
bash patches/check.sh >/dev/null || fail "check.sh fails after apply.sh"
echo "patches selftest: ok (check, regen, regen --into, refused --into, apply)"
