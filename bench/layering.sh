#!/usr/bin/env bash
# Bytes a patch release pushes (and a node that runs the previous release pulls) with
# `image.layering: single` against `release_line`, over a sequence of patch releases of a
# DIRAC-sized tree (generated: ~1,750 files, 29 MB, tagged v1.0.0), each changing 10 files
# (about 0.65 MB, as DIRAC v8.0.54 → v8.0.55 did), pushed in order to a local registry.
#
#   bash bench/layering.sh [PATCHES]     (default 3; needs docker-registry)
set -euo pipefail
patches=${1:-3}
source "$(dirname "$0")/lib.sh"
repo=$bench/patch-line
if [ ! -d "$repo" ]; then
  python3 "$root/fixtures/make-large-repo.py" "$repo" 27 400 >/dev/null
  for n in $(seq "$patches"); do
    # Ten files of the tree, the same ones every time this runs, get new bytes.
    git -C "$repo" ls-files | awk -v n="$n" 'NR % 170 == n' | head -10 | while read -r file; do
      # New bytes of the same length, incompressible and the same every run (SHA-256 in
      # counter mode).
      python3 -c "import sys, hashlib; p, n = sys.argv[1], sys.argv[2]; size = len(open(p, 'rb').read()); open(p, 'wb').write(b''.join(hashlib.sha256(f'{p}{n}{i}'.encode()).digest() for i in range(size // 32 + 1))[:size])" "$repo/$file" "$n"
    done
    git -C "$repo" -c user.name=bench -c user.email=bench@example.org commit -qam "Patch $n"
    git -C "$repo" tag "v1.0.$n"
  done
fi

rm -rf "$bench/registry-layering-data"
start_registry layering

printf '%-8s %-14s %14s %14s %14s\n' tag layering pushed_bytes tree_bytes changed_bytes
for layering in single release_line; do
  spec=$bench/spec-layering-$layering.yaml
  printf 'name: dirac\nimage:\n  repository: %s/%s/dirac\n  install_path: /opt/dirac\n  layering: %s\n' \
    "$registry" "$layering" "$layering" >"$spec"
  for n in $(seq 0 "$patches"); do
    tag=v1.0.$n
    out=$bench/out-layering-$layering-$n
    rm -rf "$out"
    "$tagpilot" image --output json --tag "$tag" --repo "$repo" --pipeline "$spec" --out "$out" >"$out.json" 2>/dev/null
    changed=0
    [ "$n" = 0 ] || changed=$(git -C "$repo" diff --numstat "v1.0.$((n - 1))" "$tag" | awk '{ print $3 }' | while read -r f; do git -C "$repo" cat-file -s "$tag:$f"; done | paste -sd+ | bc)
    python3 - "$out.json" "$tag" "$layering" "$changed" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
pushed = record["pushed"]["uploaded_bytes"]
tree = sum(l["size"] for l in record["image"]["layers"])
print(f"{sys.argv[2]:<8} {sys.argv[3]:<14} {pushed:>14} {tree:>14} {sys.argv[4]:>14}")
PY
  done
done
