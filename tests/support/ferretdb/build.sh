#!/usr/bin/env bash
# Build (or reuse from cache) the embedded-FerretDB test server used by the
# integration-test rig. Prints the binary path as the only stdout line;
# everything else goes to stderr.
#
# Cache: ${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}/ferretdb/<key>/mysync-ferretdb
# where <key> = first 16 hex digits of sha256(go.mod + go.sum + main.go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

key=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)
cache_root=${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}
out_dir=$cache_root/ferretdb/$key
bin=$out_dir/mysync-ferretdb

if [[ -x $bin ]]; then
    printf '%s\n' "$bin"
    exit 0
fi

if command -v go >/dev/null 2>&1; then
    go=$(command -v go)
elif [[ -x /usr/local/go/bin/go ]]; then
    go=/usr/local/go/bin/go
else
    echo "build.sh: no 'go' in PATH or /usr/local/go/bin/go" >&2
    exit 1
fi

mkdir -p "$out_dir"
tmp=$(mktemp "$out_dir/.mysync-ferretdb.XXXXXX")
trap 'rm -f "$tmp"' EXIT

echo "build.sh: building $bin with $("$go" version)" >&2
(
    cd "$here"
    # -mod=readonly: use the committed go.mod/go.sum as-is, never rewrite them.
    # -buildvcs=false: don't shell out to git for the enclosing mysync repo.
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS='-mod=readonly -buildvcs=false' \
        "$go" build -trimpath -o "$tmp" . >&2
)
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT

printf '%s\n' "$bin"
