#!/usr/bin/env bash
# Times a whole release (tarball + image + push) by `tagpilot release` against what users run
# instead, in the same run, against the same local registry (through a proxy that counts the
# bytes each push uploads):
#
# the shell pipeline:
#   git archive | gzip -n                      the tarball
#   skopeo copy docker://…/base oci:…          pull the base
#   umoci unpack / tar -x / umoci repack       add the release tree and the supervisor config
#   umoci config                               entrypoint and env
#   skopeo copy oci:… docker://…               push
# buildah, as GitLab's docs set it up for CI (vfs storage, chroot isolation, a fresh store):
#   git archive | gzip -n, then `buildah bud` of ADD tarball + COPY config, then `buildah push`
#
#   bash bench/image.sh [RUNS]     (default 3; needs docker-registry, skopeo, umoci, buildah)
#
# Per release: wall time, peak memory (the largest process), bytes uploaded, and the bytes a
# node that has the base pulls (the compressed layers above the base).
#
# Trees: `dirac-size` (generated, ~1,750 files, 29 MB, like DIRAC) and `large` (~1 GB), over a
# ~200 MB base already in the registry (a layer of this machine's /usr/lib/x86_64-linux-gnu).
set -euo pipefail
runs=${1:-3}
source "$(dirname "$0")/lib.sh"
[ -d "$bench/dirac-size" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/dirac-size" 27 400
[ -d "$bench/large" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/large" 1024

source "$(dirname "$0")/release_tools.sh"
start_registry image
# Everything goes through a counting proxy (one registry host for all, so each tool may mount
# the base's layers): it counts what the tools send, which is what they upload.
start_counting_proxy

if ! skopeo inspect --tls-verify=false "docker://$registry/base/debian:12" >/dev/null 2>&1; then
  rm -rf "$bench/base-layout"
  umoci init --layout "$bench/base-layout"
  umoci new --image "$bench/base-layout:12"
  umoci insert --rootless --image "$bench/base-layout:12" /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
  skopeo copy --quiet --dest-tls-verify=false "oci:$bench/base-layout:12" "docker://$registry/base/debian:12"
fi
base_size=$(skopeo inspect --raw --tls-verify=false "docker://$registry/base/debian:12" | python3 -c "import json,sys; print(sum(l[\"size\"] for l in json.load(sys.stdin)[\"layers\"]))")
layer_digests "$registry/base/debian:12" >"$bench/base-layers"
rm -f "$bench/previous"

echo "machine: $(nproc) cores; base $(python3 -c "print(round($base_size/2**20))") MiB compressed in the registry; skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | cut -d' ' -f3), buildah $(buildah --version | cut -d' ' -f3); tagpilot $(git -C "$root" rev-parse --short HEAD)"
for tree in dirac-size large; do
  repo=$bench/$tree
  tag=$(git -C "$repo" tag | head -1)
  n_runs=$runs
  [ "$tree" = large ] && n_runs=1
  rm -f "$bench/$tree.image-shell" "$bench/$tree.image-buildah" "$bench/$tree.image-tagpilot"
  for i in $(seq "$n_runs"); do
    measure "$tree.image-shell" shell_release "$repo" "$tag" "$tree-$i-$RANDOM" base/debian:12
    measure "$tree.image-buildah" buildah_release "$repo" "$tag" "$tree-$i-$RANDOM" base/debian:12
    measure "$tree.image-tagpilot" tagpilot_release "$repo" "$tag" "$tree-$i-$RANDOM" base/debian:12
  done
  python3 - "$bench" "$tree" <<'PY'
import statistics, sys
bench, tree = sys.argv[1], sys.argv[2]
def load(kind):
    rows = [l.split() for l in open(f"{bench}/{tree}.image-{kind}")]
    return (statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024,
            statistics.median(int(r[2]) for r in rows) / 2**20, statistics.median(int(r[3]) for r in rows) / 2**20,
            len(rows))
results = {kind: load(kind) for kind in ("shell", "buildah", "tagpilot")}
print(f"{tree}: {results['tagpilot'][4]} run(s) each")
names = {"shell": "shell pipeline (git archive|gzip, skopeo, umoci)", "buildah": "git archive|gzip + buildah bud + push (vfs)",
         "tagpilot": "tagpilot release (tarball + image + push)"}
for kind, (seconds, mib, up, pull, _) in results.items():
    print(f"  {names[kind]:50}: median {seconds:7.2f} s  peak {mib:6.1f} MiB  uploaded {up:7.1f} MiB  a node pulls {pull:7.1f} MiB")
ours = results["tagpilot"][0]
for kind in ("shell", "buildah"):
    print(f"  tagpilot takes {100*ours/results[kind][0]:.1f}% of the {kind} time ({results[kind][0]/ours:.1f}x faster)")
PY
done
