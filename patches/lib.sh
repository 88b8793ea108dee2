# Shared by apply.sh, check.sh and regen.sh (sourced, not run). See patches/README.md.
#
# A patched crate is a folder patches/<name>-<version>/ holding:
#   crate.sha256   the pinned checksum of <name>-<version>.crate, in `sha256sum` format
#   prune          paths removed from the unpacked crate before any patch (one a line, # comments)
#   NNNN-*.patch   the patches, applied in file-name order with `git apply`; the text before the
#                  first `diff --git` line is the patch's header (what it changes and why)
# and vendor/<name>/ is what you get by unpacking the crate, pruning and applying the patches.

set -euo pipefail

PATCHES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$PATCHES_DIR/.." && pwd)"
VENDOR_DIR="$REPO_DIR/vendor"
CRATE_CACHE="${TMPDIR:-/tmp}/filegate-crates"

die() {
    echo "patches: $*" >&2
    exit 1
}

# The git used on the temporary trees: no user or system configuration (hooks, excludes,
# autocrlf...), a fixed identity and dates, so that every run writes the same patches.
pgit() {
    GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
        GIT_AUTHOR_NAME=filegate GIT_AUTHOR_EMAIL=filegate@localhost \
        GIT_COMMITTER_NAME=filegate GIT_COMMITTER_EMAIL=filegate@localhost \
        GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' GIT_COMMITTER_DATE='2000-01-01T00:00:00Z' \
        git -c core.autocrlf=false -c core.excludesFile=/dev/null -c advice.detachedHead=false "$@"
}

# Every patched crate: the folders patches/<name>-<version>/ that pin a checksum.
all_series() {
    local d
    for d in "$PATCHES_DIR"/*/; do
        [ -f "$d/crate.sha256" ] && basename "$d"
    done
}

# The series folder of a crate given by name (or by <name>-<version>).
series_of() {
    local want="$1" s
    for s in $(all_series); do
        if [ "$s" = "$want" ] || [ "$(crate_name "$s")" = "$want" ]; then
            echo "$s"
            return
        fi
    done
    die "no patch series for '$want' (folders: $(all_series | tr '\n' ' '))"
}

# <name>-<version> -> name / version (the version starts at the last '-' before a digit).
crate_name() { sed -E 's/^(.+)-([0-9]+\.[0-9]+\.[0-9]+.*)$/\1/' <<<"$1"; }
crate_version() { sed -E 's/^(.+)-([0-9]+\.[0-9]+\.[0-9]+.*)$/\2/' <<<"$1"; }

# The patch files of a series, in the order they apply.
series_patches() {
    local f
    for f in "$PATCHES_DIR/$1"/[0-9][0-9][0-9][0-9]-*.patch; do
        [ -e "$f" ] && echo "$f"
    done
}

# Prints the path of the verified .crate file, downloading it into the cache if needed.
fetch_crate() {
    local series="$1" name version file
    name="$(crate_name "$series")"
    version="$(crate_version "$series")"
    file="$CRATE_CACHE/$name-$version.crate"
    mkdir -p "$CRATE_CACHE"
    if [ ! -f "$file" ] || ! (cd "$CRATE_CACHE" && sha256sum --quiet -c "$PATCHES_DIR/$series/crate.sha256" >/dev/null 2>&1); then
        echo "patches: downloading $name $version from crates.io" >&2
        curl -sSfL --retry 3 -o "$file.part" "https://static.crates.io/crates/$name/$name-$version.crate" \
            || die "could not download $name $version"
        mv "$file.part" "$file"
    fi
    (cd "$CRATE_CACHE" && sha256sum --quiet -c "$PATCHES_DIR/$series/crate.sha256") \
        || die "$file does not match the checksum pinned in patches/$series/crate.sha256"
    echo "$file"
}

# build_tree SERIES DIR [UPTO]: DIR becomes a git repository whose first commit ("pristine")
# is the pruned crate and which has one commit per patch (subject: the patch file name, body:
# its header), up to and including patch number UPTO if given.
build_tree() {
    local series="$1" dir="$2" upto="${3:-9999}" crate p base header
    crate="$(fetch_crate "$series")"
    mkdir -p "$dir"
    tar -xzf "$crate" -C "$dir" --strip-components=1 --no-same-owner
    if [ -f "$PATCHES_DIR/$series/prune" ]; then
        local line path
        while IFS= read -r line || [ -n "$line" ]; do
            line="${line%%#*}"
            line="$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$line")"
            [ -z "$line" ] && continue
            case "$line" in /* | *..*) die "prune: '$line' must be a relative path inside the crate" ;; esac
            path="$dir/$line"
            [ -e "$path" ] || echo "patches: warning: prune: $series has no '$line'" >&2
            rm -rf -- "$path"
        done <"$PATCHES_DIR/$series/prune"
    fi
    pgit -C "$dir" init -q
    pgit -C "$dir" add -A -f .
    pgit -C "$dir" commit -q --allow-empty -m pristine
    pgit -C "$dir" tag pristine
    for p in $(series_patches "$series"); do
        base="$(basename "$p")"
        [ "$((10#${base:0:4}))" -le "$((10#$upto))" ] || break
        pgit -C "$dir" apply --index --whitespace=nowarn "$p" \
            || die "patches/$series/$base does not apply"
        header="$(patch_header "$p")"
        pgit -C "$dir" commit -q --allow-empty --cleanup=verbatim -m "$base" -m "${header:-(no header)}"
    done
}

# export_series TREE SERIES: rewrites the patch files of SERIES from the commits of TREE after
# "pristine" (file name: the commit's subject; header: its body; then the diff).
export_series() {
    local tree="$1" series="$2" c file
    rm -f "$PATCHES_DIR/$series"/[0-9][0-9][0-9][0-9]-*.patch
    for c in $(pgit -C "$tree" rev-list --reverse pristine..HEAD); do
        file="$(pgit -C "$tree" log -1 --format=%s "$c")"
        [[ "$file" =~ ^[0-9]{4}-[A-Za-z0-9._-]+\.patch$ ]] || die "commit '$file' is not named like a patch file"
        {
            pgit -C "$tree" log -1 --format=%b "$c" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
            echo
            # Without `index` lines (blob ids), so that changing one patch does not rewrite
            # the later ones touching the same file (kept for binary diffs, which need them).
            pgit -C "$tree" diff --no-color --no-ext-diff --no-renames --binary --full-index "$c^" "$c" \
                | awk '/^diff --git /{print; hdr=1; next}
                       hdr && /^index [0-9a-f]+\.\.[0-9a-f]+/ {held=$0; next}
                       hdr && /^GIT binary patch/ {print held}
                       /^(--- |@@ |GIT binary patch|Binary files)/ {hdr=0; held=""}
                       {print}'
        } >"$PATCHES_DIR/$series/$file"
    done
}

# The header of a patch file: everything before its first `diff --git` line.
patch_header() {
    sed -n '/^diff --git /q;p' "$1"
}

# copy_tree FROM TO: TO becomes an exact copy of FROM's files (without .git).
copy_tree() {
    local from="$1" to="$2"
    rm -rf "$to"
    mkdir -p "$to"
    tar -C "$from" --exclude=./.git -cf - . | tar -C "$to" -xf -
}
