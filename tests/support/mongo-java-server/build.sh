#!/usr/bin/env bash
# Fetches (Maven) and compiles the mongo-java-server launcher once; prints its classpath.
# Cache: ${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}/mongo-java-server/<key>,
# key = first 16 hex of sha256(pom.xml + MysyncMongoServer.java).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(cat "$here/pom.xml" "$here/MysyncMongoServer.java" | sha256sum | cut -c1-16)
root=${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}/mongo-java-server
out=$root/$key

if [[ ! -f $out/classes/MysyncMongoServer.class ]]; then
    command -v mvn >/dev/null || { echo "build.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
    command -v javac >/dev/null || { echo "build.sh: javac not found (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
    mkdir -p "$root"
    tmp=$(mktemp -d "$root/.build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "build.sh: fetching mongo-java-server jars with Maven" >&2
    if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp/lib" > "$tmp/mvn.log" 2>&1; then
        cat "$tmp/mvn.log" >&2
        exit 1
    fi
    javac -Xlint:none --release 17 -cp "$tmp/lib/*" -d "$tmp/classes" "$here/MysyncMongoServer.java"
    rm -f "$tmp/mvn.log"
    rm -rf "$out"
    mv "$tmp" "$out"
    trap - EXIT
fi
printf '%s\n' "$out/classes:$out/lib/*"
