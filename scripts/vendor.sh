#!/usr/bin/env bash
# Refresh the vendored front-end libraries under static/vendor/, the way
# Django's admin vendors jQuery and Select2: the distribution files and their
# licences, checked in, so `make run` never needs npm. Bump a version here,
# run `make vendor`, look at the diff, commit.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOTOSWIPE=5.4.4
SORTABLEJS=1.15.7
UPPY=6.0.1
AXE=4.14.1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent \
    "photoswipe@$PHOTOSWIPE" "sortablejs@$SORTABLEJS" "uppy@$UPPY" "axe-core@$AXE")
nm="$work/node_modules"

put() {  # put <name>-<version> <file>... : copy into static/vendor/<name>-<version>/
    local dest="static/vendor/$1"; shift
    mkdir -p "$dest"
    cp "$@" "$dest/"
}

rm -rf static/vendor
put "photoswipe-$PHOTOSWIPE" "$nm/photoswipe/dist/photoswipe.esm.min.js" \
    "$nm/photoswipe/dist/photoswipe-lightbox.esm.min.js" "$nm/photoswipe/dist/photoswipe.css" \
    "$nm/photoswipe/LICENSE"
put "sortablejs-$SORTABLEJS" "$nm/sortablejs/modular/sortable.complete.esm.js" "$nm/sortablejs/LICENSE"
# Uppy's bundle includes its dependencies (Preact and others, all MIT/ISC);
# their licences are listed in the bundle's package.
put "uppy-$UPPY" "$nm/uppy/dist/uppy.min.mjs" "$nm/uppy/dist/uppy.min.css" "$nm/uppy/LICENSE"
put "axe-core-$AXE" "$nm/axe-core/axe.min.js" "$nm/axe-core/LICENSE" "$nm/axe-core/LICENSE-3RD-PARTY.txt"

# The ES modules refer to each other by relative path; sourcemap comments
# would point at files we do not ship (and 404 in the browser console).
find static/vendor -name '*.js' -o -name '*.mjs' | xargs sed -i -E '/^\/\/# sourceMappingURL=/d'
echo "vendored into static/vendor/:"; ls static/vendor
