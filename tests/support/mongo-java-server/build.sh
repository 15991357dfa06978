#!/usr/bin/env bash
# Fetches (Maven) and compiles the mongo-java-server launcher once; prints its classpath.
# Cache: ${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}/mongo-java-server/<key>,
# key = first 16 hex of sha256(pom.xml + MysyncMongoServer.java). Quiet unless it fails.
# Start: java -Xmx512m -cp "$(bash build.sh)" MysyncMongoServer --port 0 --data DIR/mongo.mv.db
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(cat "$here/pom.xml" "$here/MysyncMongoServer.java" | sha256sum | cut -c1-16)
root=${MS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mysync}/mongo-java-server
out=$root/$key

complete() { # $1 = dir: has the compiled launcher and the server jars
  [[ -f $1/classes/MysyncMongoServer.class ]] &&
    compgen -G "$1/lib/mongo-java-server-core-*.jar" >/dev/null &&
    compgen -G "$1/lib/mongo-java-server-h2-backend-*.jar" >/dev/null
}

if ! complete "$out"; then
  command -v mvn >/dev/null || { echo "build.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
  command -v javac >/dev/null ||
    { echo "build.sh: javac not found (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
  mkdir -p "$root"
  tmp=$(mktemp -d "$root/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp/lib" > "$tmp/mvn.log" 2>&1; then
    echo "build.sh: mvn dependency:copy-dependencies failed:" >&2
    cat "$tmp/mvn.log" >&2
    exit 1
  fi
  rm -f "$tmp/mvn.log"
  javac -Xlint:none --release 17 -cp "$tmp/lib/*" -d "$tmp/classes" "$here/MysyncMongoServer.java"
  complete "$tmp" || { echo "build.sh: incomplete build in $tmp" >&2; exit 1; }
  # Atomic install. A concurrent build that finished first wins; a partial leftover is replaced.
  if ! complete "$out"; then
    if [[ -e $out ]]; then rm -rf "$out"; fi
    mv -T "$tmp" "$out" 2>/dev/null || complete "$out" ||
      { echo "build.sh: cannot install $out" >&2; exit 1; }
  fi
  trap - EXIT
  rm -rf "$tmp"
fi
printf '%s\n' "$out/classes:$out/lib/*"
