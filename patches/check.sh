#!/usr/bin/env bash
# Checks that vendor/ is exactly the crates.io sources plus patches/ (what apply.sh would
# write): exits non-zero and prints the difference if not. Run by .ci/run.
# After editing vendor/, run `patches/regen.sh <crate>` to turn the edit into a patch.
source "$(dirname "$0")/lib.sh"

work="$(mktemp -d "${TMPDIR:-/tmp}/filegate-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
status=0
names=()
for s in $(all_series); do
    name="$(crate_name "$s")"
    names+=("$name")
    build_tree "$s" "$work/$s"
    rm -rf "$work/$s/.git"
    if [ ! -d "$VENDOR_DIR/$name" ]; then
        echo "patches: vendor/$name is missing (run patches/apply.sh $name)"
        status=1
    elif ! (cd "$work" && diff -ru "$s" "$VENDOR_DIR/$name" >"$work/$name.diff"); then
        echo "patches: vendor/$name differs from $name $(crate_version "$s") + patches/$s/:"
        echo "(+ lines and 'Only in vendor/...' files are in vendor/ but not produced by the patches;"
        echo " run patches/regen.sh $name to make them a patch, or patches/apply.sh $name to drop them)"
        cat "$work/$name.diff"
        status=1
    else
        echo "vendor/$name = $name $(crate_version "$s") + $(series_patches "$s" | wc -l) patches: ok"
    fi
    for p in $(series_patches "$s"); do
        if ! grep -qF "$(basename "$p")" "$PATCHES_DIR/$s/PATCHES.md" 2>/dev/null; then
            echo "patches: patches/$s/PATCHES.md (the index) does not list $(basename "$p")"
            status=1
        fi
    done
    if grep -l 'FILL IN' $(series_patches "$s") "$PATCHES_DIR/$s/PATCHES.md" 2>/dev/null | grep -q .; then
        echo "patches: warning: placeholders ('FILL IN') left to complete in:"
        grep -l 'FILL IN' $(series_patches "$s") "$PATCHES_DIR/$s/PATCHES.md" | sed "s|^$REPO_DIR/|  |"
    fi
done
for d in "$VENDOR_DIR"/*/; do
    [ -d "$d" ] || continue
    n="$(basename "$d")"
    if ! printf '%s\n' "${names[@]}" | grep -qx "$n"; then
        echo "patches: vendor/$n has no patch series in patches/ (add patches/$n-<version>/crate.sha256)"
        status=1
    fi
done
exit "$status"
