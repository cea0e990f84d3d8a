#!/usr/bin/env bash
# Recreates the plain-text training corpus of the project's default model from a Debian
# package: the King James Version of the Bible (public domain; see data/CORPUS.md).
#
#   scripts/make_corpus.sh [OUTDIR]        (default OUTDIR: build/corpus)
#
# Writes OUTDIR/kjv-train.txt and OUTDIR/kjv-heldout.txt and prints the byte count and
# SHA-256 of each, so that a rerun can be checked against data/CORPUS.md. The text comes
# from bible-kjv-text (the compressed text) read with the `bible` program of bible-kjv;
# both are installed with apt-get when missing.
#
# Preparation (deterministic): `bible -f Gen1:1-Rev22:21` prints every verse on one line
# after its reference ("Ge1:1 In the beginning ..."); the reference is removed, runs of
# spaces become one space, and the verses of a chapter are joined with single spaces into
# one paragraph, so the text reads as prose without verse numbers. Chapters are separated by
# one blank line and keep the Bible's order. Every 50th chapter (the 50th, 100th, ... of the
# 1,189) goes to the held-out file, the others to the training file.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-build/corpus}"
export LC_ALL=C

packages=(bible-kjv-text bible-kjv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$out_dir"
raw="$out_dir/kjv-verses.txt"
# -f turns pretty-printing off: one verse per line, no line wrapping whatever COLUMNS says.
env -u COLUMNS bible -f Gen1:1-Rev22:21 >"$raw"

verses=$(wc -l <"$raw")
if [ "$verses" -ne 31102 ]; then
  echo "error: expected 31102 verses from bible-kjv, got $verses (in $raw)" >&2
  exit 1
fi

train="$out_dir/kjv-train.txt"
heldout="$out_dir/kjv-heldout.txt"
awk -v train="$train" -v heldout="$heldout" '
  function flush() {
    if (chapter == "") return
    dest = (n % 50 == 0) ? heldout : train
    printf "%s%s\n", (started[dest] ? "\n" : ""), text > dest
    started[dest] = 1
  }
  {
    if (match($0, /^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ /) == 0) {
      printf "error: line %d has no verse reference: %s\n", NR, $0 > "/dev/stderr"
      exit 1
    }
    ref = substr($0, 1, RLENGTH - 1)
    verse = substr($0, RLENGTH + 1)
    gsub(/ +/, " ", verse)
    sub(/^ /, "", verse)
    sub(/ $/, "", verse)
    key = ref
    sub(/:.*/, "", key)
    if (key != chapter) {
      flush()
      chapter = key
      n++
      text = verse
    } else {
      text = text " " verse
    }
  }
  END {
    flush()
    if (n != 1189) {
      printf "error: expected 1189 chapters, got %d\n", n > "/dev/stderr"
      exit 1
    }
  }' "$raw"
rm -f "$raw"

version=$(dpkg-query -W -f='${Version}' bible-kjv-text)
echo "corpus from bible-kjv-text $version (bible-kjv $(dpkg-query -W -f='${Version}' bible-kjv)):"
for f in "$train" "$heldout"; do
  printf '%10d bytes  %s  %s\n' "$(wc -c <"$f")" "$(sha256sum "$f" | cut -d' ' -f1)" "$f"
done
