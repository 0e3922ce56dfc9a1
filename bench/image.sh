#!/usr/bin/env bash
# Times a whole release (tarball + image + push) by `tagpilot release` against the shell
# pipeline users glue together today, in the same run, against the same local registry:
#
#   git archive | gzip -n                      the tarball
#   skopeo copy docker://…/base oci:…          pull the base
#   umoci unpack / tar -x / umoci repack       add the release tree and the supervisor config
#   umoci config                               entrypoint and env
#   skopeo copy oci:… docker://…               push
#
#   bash bench/image.sh [RUNS]     (default 3; needs docker-registry, skopeo, umoci)
#
# Trees: `dirac-size` (generated, ~1,750 files, 29 MB, like DIRAC) and `large` (~1 GB), over a
# ~200 MB base already in the registry (a layer of this machine's /usr/lib/x86_64-linux-gnu).
set -euo pipefail
runs=${1:-3}
source "$(dirname "$0")/lib.sh"
[ -d "$bench/dirac-size" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/dirac-size" 27 400
[ -d "$bench/large" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/large" 1024

start_registry image

if ! skopeo inspect --tls-verify=false "docker://$registry/base/debian:12" >/dev/null 2>&1; then
  rm -rf "$bench/base-layout"
  umoci init --layout "$bench/base-layout"
  umoci new --image "$bench/base-layout:12"
  umoci insert --rootless --image "$bench/base-layout:12" /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
  skopeo copy --quiet --dest-tls-verify=false "oci:$bench/base-layout:12" "docker://$registry/base/debian:12"
fi
base_size=$(skopeo inspect --raw --tls-verify=false "docker://$registry/base/debian:12" | python3 -c "import json,sys; print(sum(l[\"size\"] for l in json.load(sys.stdin)[\"layers\"]))")

shell_release() { # repo tag run
  local repo=$1 tag=$2 n=$3 work=$bench/shell-work
  rm -rf "$work" && mkdir -p "$work"
  git -C "$repo" archive --format=tar --prefix=dirac/ "$tag" | gzip -n >"$work/dirac.tar.gz"
  skopeo copy --quiet --src-tls-verify=false "docker://$registry/base/debian:12" "oci:$work/layout:base"
  umoci unpack --rootless --image "$work/layout:base" "$work/bundle"
  mkdir -p "$work/bundle/rootfs/opt/dirac" "$work/bundle/rootfs/etc"
  tar -xzf "$work/dirac.tar.gz" -C "$work/bundle/rootfs/opt/dirac" --strip-components=1
  cp "$root/images/dirac/containerpilot.json5" "$work/bundle/rootfs/etc/containerpilot.json5"
  umoci repack --image "$work/layout:app" "$work/bundle"
  umoci config --image "$work/layout:app" --config.entrypoint /usr/local/bin/containerpilot \
    --config.env CONTAINERPILOT=/etc/containerpilot.json5 --config.env DIRAC_ROOT=/opt/dirac
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:app" "docker://$registry/shell/dirac-$n:1.0.0"
}

tagpilot_release() { # repo tag run
  local repo=$1 tag=$2 n=$3
  cat >"$bench/tagpilot.yaml" <<YML
name: dirac
tarball: { prefix: "dirac/" }
image:
  repository: $registry/tagpilot/dirac-$n
  base: $registry/base/debian:12
  install_path: /opt/dirac
  env: { DIRAC_ROOT: /opt/dirac }
  supervisor:
    config:
      jobs: [{ name: filecatalog, exec: "dirac-service DataManagement/FileCatalog", port: 9197,
               health: { exec: "dirac-ping-service", interval: 10, ttl: 25 } }]
YML
  rm -rf "$bench/tagpilot-out"
  DOCKER_CONFIG=$bench/no-docker-config "$tagpilot" release --repo "$repo" --tag "$tag" \
    --pipeline "$bench/tagpilot.yaml" --out "$bench/tagpilot-out"
}

export -f shell_release tagpilot_release
export bench registry root tagpilot

measure() { # label function args...  → appends "seconds max-rss-KiB"
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$bench/time.out" bash -c '"$@"' _ "$@" >/dev/null 2>"$bench/last.err" || { cat "$bench/last.err"; exit 1; }
  cat "$bench/time.out" >>"$bench/$label"
}

echo "machine: $(nproc) cores; base $(python3 -c "print(round($base_size/2**20))") MiB compressed in the registry; skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | cut -d' ' -f3); tagpilot $(git -C "$root" rev-parse --short HEAD)"
for tree in dirac-size large; do
  repo=$bench/$tree
  tag=$(git -C "$repo" tag | head -1)
  n_runs=$runs
  [ "$tree" = large ] && n_runs=1
  rm -f "$bench/$tree.image-shell" "$bench/$tree.image-tagpilot"
  for i in $(seq "$n_runs"); do
    measure "$tree.image-shell" shell_release "$repo" "$tag" "$tree-$i-$RANDOM"
    measure "$tree.image-tagpilot" tagpilot_release "$repo" "$tag" "$tree-$i-$RANDOM"
  done
  python3 - "$bench" "$tree" <<'PY'
import statistics, sys
bench, tree = sys.argv[1], sys.argv[2]
def load(kind):
    rows = [l.split() for l in open(f"{bench}/{tree}.image-{kind}")]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024, len(rows)
shell, shell_mib, n = load("shell")
ours, ours_mib, _ = load("tagpilot")
print(f"{tree}: {n} run(s) each")
print(f"  shell pipeline (git archive|gzip, skopeo, umoci) : median {shell:7.2f} s  peak {shell_mib:6.1f} MiB")
print(f"  tagpilot release (tarball + image + push)       : median {ours:7.2f} s  peak {ours_mib:6.1f} MiB")
print(f"  tagpilot takes {100*ours/shell:.1f}% of the pipeline's time ({shell/ours:.1f}x faster)")
PY
done
