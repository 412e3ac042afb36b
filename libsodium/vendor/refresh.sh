#!/usr/bin/env bash
# Copies the files named in files.txt from a libsodium-stable source tree (see README.md).
set -euo pipefail
src=${1:?usage: refresh.sh /path/to/libsodium-stable}
here=$(cd "$(dirname "$0")" && pwd)
while read -r f; do
  mkdir -p "$here/src/libsodium/$(dirname "$f")"
  cp "$src/src/libsodium/$f" "$here/src/libsodium/$f"
done < "$here/files.txt"
cp "$src/LICENSE" "$here/LICENSE"
