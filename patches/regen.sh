#!/usr/bin/env bash
# Turns edits made in vendor/<crate> into the patch series of patches/<crate>-<version>/.
#
#   patches/regen.sh <crate> [--name SLUG]
#       The difference between vendor/<crate> and source + existing patches becomes a new
#       patch NNNN-SLUG.patch (next number; SLUG defaults to "unsorted"), whose header is a
#       placeholder ("FILL IN") to replace with what the change does and why, and a line
#       in patches/<crate>-<version>/PATCHES.md (the index) to complete. Lines added to
#       vendor/<crate>/PATCHES.md (text other branches wrote there) are moved into that
#       header instead of being patched in.
#   patches/regen.sh <crate> --into NNNN
#       Folds the difference into existing patch NNNN instead (a fixup commit and
#       `git rebase --autosquash` in a temporary repository); the later patches are
#       regenerated on top of it. Fails, changing nothing, if they no longer apply.
#   patches/regen.sh <crate> --export
#       Rewrites every patch of the series from the series itself (normalises hand edits
#       of a patch file; headers are kept). vendor/ is left alone.
#
# Every patch file of the series is rewritten from the temporary repository (one commit per
# patch), so its line numbers stay exact; then vendor/<crate> is rewritten from it, so it
# equals source + patches (patches/check.sh passes). Review with `git diff patches/`.
source "$(dirname "$0")/lib.sh"

[ "$#" -ge 1 ] || die "usage: patches/regen.sh <crate> [--name SLUG | --into NNNN | --export]"
series="$(series_of "$1")"
shift
mode=new
slug=unsorted
into=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --name) slug="${2:?--name needs a value}"; shift 2 ;;
        --into) mode=into; into="${2:?--into needs a patch number}"; shift 2 ;;
        --export) mode=export; shift ;;
        *) die "unknown argument '$1'" ;;
    esac
done
[[ "$slug" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "--name: use lower-case letters, digits and '-'"
name="$(crate_name "$series")"
vendor="$VENDOR_DIR/$name"
[ -d "$vendor" ] || die "vendor/$name does not exist (patches/apply.sh $name writes it)"

work="$(mktemp -d "${TMPDIR:-/tmp}/filegate-regen.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
build_tree "$series" "$tree"

if [ "$mode" != export ]; then
    # The tree's files become vendor's; what changed is staged.
    find "$tree" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
    tar -C "$vendor" -cf - . | tar -C "$tree" -xf -
    notes=
    if ! pgit -C "$tree" diff --quiet HEAD -- PATCHES.md 2>/dev/null; then
        notes="$(pgit -C "$tree" diff -U0 HEAD -- PATCHES.md | sed -n '/^+++ /d;s/^+//p')"
        pgit -C "$tree" checkout -q HEAD -- PATCHES.md 2>/dev/null || rm -f "$tree/PATCHES.md"
    fi
    pgit -C "$tree" add -A -f .
    if pgit -C "$tree" diff --cached --quiet; then
        echo "vendor/$name already equals $series + patches: nothing to add"
        if [ -n "$notes" ]; then
            echo "(text added to its PATCHES.md was dropped:)"
            printf '%s\n' "$notes"
        fi
        copy_tree "$tree" "$vendor"
        exit 0
    fi
    if [ "$mode" = new ]; then
        last="$(series_patches "$series" | tail -1)"
        next=1
        [ -z "$last" ] || next=$((10#$(basename "$last" | cut -c1-4) + 1))
        file="$(printf '%04d-%s.patch' "$next" "$slug")"
        changed="$(pgit -C "$tree" diff --cached --name-only | sed 's/^/  /')"
        header="FILL IN: one line saying what this patch changes in $name $(crate_version "$series").

FILL IN: why filegate needs it, what it does, what shows it (a test), whether it is
worth sending upstream. Made by patches/regen.sh from edits to vendor/$name in:
$changed"
        [ -z "$notes" ] || header="$header

Text added to vendor/$name/PATCHES.md (edit it into the header above):
$notes"
        pgit -C "$tree" commit -q --cleanup=verbatim -m "$file" -m "$header"
        printf -- '- `%s`: FILL IN (one line).\n' "$file" >>"$PATCHES_DIR/$series/PATCHES.md"
        echo "new patch: patches/$series/$file (edit its header and its line in"
        echo "patches/$series/PATCHES.md: they say FILL IN)"
    else
        target="$(pgit -C "$tree" log --format=%s pristine..HEAD | grep -E "^0*$((10#$into))-" | head -1 || true)"
        [ -n "$target" ] || die "no patch number $into in patches/$series"
        pgit -C "$tree" commit -q -m "fixup! $target"
        if ! GIT_SEQUENCE_EDITOR=true pgit -C "$tree" rebase -q -i --autosquash --empty=drop pristine >"$work/rebase.log" 2>&1; then
            cat "$work/rebase.log" >&2
            die "folding the change into $target conflicts with a later patch; nothing changed (run without --into to add a new patch)"
        fi
        [ -z "$notes" ] || printf 'Text added to vendor/%s/PATCHES.md, not kept (put it in the header of %s):\n%s\n' "$name" "$target" "$notes"
        echo "folded into patches/$series/$target"
    fi
fi

export_series "$tree" "$series"
if [ "$mode" = export ]; then
    echo "patches/$series: $(series_patches "$series" | wc -l) patches rewritten (vendor/$name untouched)"
    exit 0
fi
copy_tree "$tree" "$vendor"
echo "patches/$series: $(series_patches "$series" | wc -l) patches written; vendor/$name rewritten from them"
