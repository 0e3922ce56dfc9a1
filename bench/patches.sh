#!/usr/bin/env bash
# A sequence of patch releases, each released in order by the shell pipeline, by buildah, and by
# tagpilot with `image.layering: single` and with `release_line`, all in one run, to one local
# registry through a proxy that counts the bytes each push sends:
#
#   bash bench/patches.sh [PATCHES]     (default 3; needs docker-registry, skopeo, umoci, buildah)
#
# The tree is DIRAC-sized (generated: ~1,750 files, 29 MB, tagged v1.0.0); each patch release
# changes 10 files (about 0.65 MB, as DIRAC v8.0.54 → v8.0.55 did). The base is scratch. Per
# release: wall time, peak memory, bytes uploaded, and the bytes a node that runs the previous
# release pulls (the compressed layers it does not have yet).
set -euo pipefail
patches=${1:-3}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/release_tools.sh"
repo=$bench/patch-line
if [ ! -d "$repo" ]; then
  python3 "$root/fixtures/make-large-repo.py" "$repo" 27 400 >/dev/null
fi
# Ten files of the tree, the same ones every time this runs, get new bytes in each patch.
for n in $(seq "$patches"); do
  git -C "$repo" rev-parse -q --verify "refs/tags/v1.0.$n" >/dev/null && continue
  git -C "$repo" ls-files | awk -v n="$n" 'NR % 170 == n' | head -10 | while read -r file; do
    # New bytes of the same length, incompressible and the same every run (SHA-256 in counter
    # mode).
    python3 -c "import sys, hashlib; p, n = sys.argv[1], sys.argv[2]; size = len(open(p, 'rb').read()); open(p, 'wb').write(b''.join(hashlib.sha256(f'{p}{n}{i}'.encode()).digest() for i in range(size // 32 + 1))[:size])" "$repo/$file" "$n"
  done
  git -C "$repo" -c user.name=bench -c user.email=bench@example.org commit -qam "Patch $n"
  git -C "$repo" tag "v1.0.$n"
done

rm -rf "$bench/registry-patches-data"
start_registry patches
start_counting_proxy
: >"$bench/base-layers"

echo "machine: $(nproc) cores; skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | cut -d' ' -f3), buildah $(buildah --version | cut -d' ' -f3); tagpilot $(git -C "$root" rev-parse --short HEAD)"
name=dirac-$RANDOM
for tool in shell buildah single release_line; do
  rm -f "$bench/patches-$tool" "$bench/previous"
  for n in $(seq 0 "$patches"); do
    case $tool in
      shell | buildah) measure "patches-$tool" "${tool}_release" "$repo" "v1.0.$n" "$name" scratch ;;
      *) measure "patches-$tool" tagpilot_release "$repo" "v1.0.$n" "$name-$tool" scratch "$tool" ;;
    esac
    cp "$bench/pushed" "$bench/previous"
  done
done

python3 - "$bench" "$patches" <<'PY'
import statistics, sys
bench, patches = sys.argv[1], int(sys.argv[2])
names = {"shell": "shell pipeline", "buildah": "buildah (vfs)", "single": "tagpilot, layering: single",
         "release_line": "tagpilot, layering: release_line"}
rows = {tool: [l.split() for l in open(f"{bench}/patches-{tool}")] for tool in names}
print(f"{'':34} {'first release':>28}   patch releases (median of {patches})")
print(f"{'':34} {'wall':>8} {'uploaded':>10} {'pulled':>8}   {'wall':>7} {'peak':>9} {'uploaded':>10} {'pulled':>10}")
for tool, name in names.items():
    first, rest = rows[tool][0], rows[tool][1:]
    med = lambda i: statistics.median(float(r[i]) for r in rest)
    print(f"{name:34} {float(first[0]):7.2f}s {int(first[2])/2**20:8.2f}Mi {int(first[3])/2**20:6.2f}Mi"
          f"   {med(0):6.2f}s {max(int(r[1]) for r in rows[tool])/1024:7.1f}Mi {med(2)/2**20:8.2f}Mi {med(3)/2**20:8.2f}Mi")
base = statistics.median(int(r[2]) for r in rows["single"][1:])
line = statistics.median(int(r[2]) for r in rows["release_line"][1:])
print(f"a patch release with release_line uploads {100*line/base:.1f}% of what layering: single uploads")
for tool in ("shell", "buildah"):
    other = statistics.median(int(r[3]) for r in rows[tool][1:])
    ours = statistics.median(int(r[3]) for r in rows["release_line"][1:])
    print(f"a node pulls {100*ours/other:.1f}% of what it pulls after a {names[tool]} patch release")
PY
