#!/usr/bin/env bash
# Writes vendor/<crate> from the exact crates.io source and the patch series in
# patches/<crate>-<version>/: download (cached in ${TMPDIR:-/tmp}/filegate-crates), check the
# pinned sha256, unpack, prune, apply the patches in order. Replaces vendor/<crate> entirely.
#
#   patches/apply.sh            every patched crate
#   patches/apply.sh libunftp   one crate (by name or <name>-<version>)
source "$(dirname "$0")/lib.sh"

series=()
if [ "$#" -eq 0 ]; then
    mapfile -t series < <(all_series)
else
    for c in "$@"; do series+=("$(series_of "$c")"); done
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/filegate-apply.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for s in "${series[@]}"; do
    build_tree "$s" "$work/$s"
    copy_tree "$work/$s" "$VENDOR_DIR/$(crate_name "$s")"
    echo "vendor/$(crate_name "$s"): $(crate_name "$s") $(crate_version "$s") + $(series_patches "$s" | wc -l) patches"
done
