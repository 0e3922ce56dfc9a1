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

start_registry image
# Everything goes through a counting proxy (one registry host for all, so each tool may mount
# the base's layers): it counts what the tools send, which is what they upload.
upstream=${registry##*:}
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$root/bench/count_proxy.py" "$proxy_port" "$upstream" "$bench/uploaded" &
proxy_pid=$!
trap 'kill $registry_pid $proxy_pid 2>/dev/null' EXIT
pushto=127.0.0.1:$proxy_port
until (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; do sleep 0.1; done

if ! skopeo inspect --tls-verify=false "docker://$registry/base/debian:12" >/dev/null 2>&1; then
  rm -rf "$bench/base-layout"
  umoci init --layout "$bench/base-layout"
  umoci new --image "$bench/base-layout:12"
  umoci insert --rootless --image "$bench/base-layout:12" /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
  skopeo copy --quiet --dest-tls-verify=false "oci:$bench/base-layout:12" "docker://$registry/base/debian:12"
fi
base_size=$(skopeo inspect --raw --tls-verify=false "docker://$registry/base/debian:12" | python3 -c "import json,sys; print(sum(l[\"size\"] for l in json.load(sys.stdin)[\"layers\"]))")
base_layers=$(skopeo inspect --raw --tls-verify=false "docker://$registry/base/debian:12" | python3 -c "import json,sys; print(' '.join(l[\"digest\"] for l in json.load(sys.stdin)[\"layers\"]))")

shell_release() { # repo tag run
  local repo=$1 tag=$2 n=$3 work=$bench/shell-work
  rm -rf "$work" && mkdir -p "$work"
  git -C "$repo" archive --format=tar --prefix=dirac/ "$tag" | gzip -n >"$work/dirac.tar.gz"
  skopeo copy --quiet --src-tls-verify=false "docker://$pushto/base/debian:12" "oci:$work/layout:base"
  umoci unpack --rootless --image "$work/layout:base" "$work/bundle"
  mkdir -p "$work/bundle/rootfs/opt/dirac" "$work/bundle/rootfs/etc"
  tar -xzf "$work/dirac.tar.gz" -C "$work/bundle/rootfs/opt/dirac" --strip-components=1
  cp "$root/images/dirac/containerpilot.json5" "$work/bundle/rootfs/etc/containerpilot.json5"
  umoci repack --image "$work/layout:app" "$work/bundle"
  umoci config --image "$work/layout:app" --config.entrypoint /usr/local/bin/containerpilot \
    --config.env CONTAINERPILOT=/etc/containerpilot.json5 --config.env DIRAC_ROOT=/opt/dirac
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:app" "docker://$pushto/shell/dirac-$n:1.0.0"
  echo "$pushto/shell/dirac-$n:1.0.0" >"$bench/pushed"
}

buildah_release() { # repo tag run
  local repo=$1 tag=$2 n=$3 work=$bench/buildah-work
  local store=(--storage-driver vfs --root "$work/storage" --runroot "$work/run")
  rm -rf "$work" && mkdir -p "$work/ctx"
  git -C "$repo" archive --format=tar --prefix=dirac/ "$tag" | gzip -n >"$work/ctx/dirac.tar.gz"
  cp "$root/images/dirac/containerpilot.json5" "$work/ctx/containerpilot.json5"
  cat >"$work/ctx/Containerfile" <<DOCKERFILE
FROM $pushto/base/debian:12
ADD dirac.tar.gz /opt/
COPY containerpilot.json5 /etc/containerpilot.json5
ENV CONTAINERPILOT=/etc/containerpilot.json5 DIRAC_ROOT=/opt/dirac
ENTRYPOINT ["/usr/local/bin/containerpilot"]
DOCKERFILE
  buildah "${store[@]}" bud --quiet --tls-verify=false --isolation chroot \
    -t "$pushto/buildah/dirac-$n:1.0.0" "$work/ctx" >/dev/null
  buildah "${store[@]}" push --quiet --tls-verify=false "$pushto/buildah/dirac-$n:1.0.0"
  echo "$pushto/buildah/dirac-$n:1.0.0" >"$bench/pushed"
  rm -rf "$work"
}

tagpilot_release() { # repo tag run
  local repo=$1 tag=$2 n=$3
  cat >"$bench/tagpilot.yaml" <<YML
name: dirac
tarball: { prefix: "dirac/" }
image:
  repository: $pushto/tagpilot/dirac-$n
  base: $pushto/base/debian:12
  install_path: /opt/dirac
  env: { DIRAC_ROOT: /opt/dirac }
  supervisor:
    binary: /usr/local/bin/containerpilot   # the base's, as the other two have it
    config:
      consul: localhost:8500
      jobs: [{ name: filecatalog, exec: "dirac-service DataManagement/FileCatalog", port: 9197,
               health: { exec: "dirac-ping-service", interval: 10, ttl: 25 } }]
YML
  rm -rf "$bench/tagpilot-out"
  DOCKER_CONFIG=$bench/no-docker-config "$tagpilot" release --repo "$repo" --tag "$tag" \
    --pipeline "$bench/tagpilot.yaml" --out "$bench/tagpilot-out"
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pushed']['reference'])" \
    "$bench/tagpilot-out/release.json" >"$bench/pushed"
}

export -f shell_release buildah_release tagpilot_release
export bench registry root tagpilot pushto

# The compressed layers of an image above the base: what a node with the base pulls.
pulled_bytes() { # reference
  skopeo inspect --raw --tls-verify=false "docker://$1" | python3 -c "
import json, sys
base = set(sys.argv[1].split())
print(sum(l['size'] for l in json.load(sys.stdin)['layers'] if l['digest'] not in base))" "$base_layers"
}

measure() { # label function args...  → appends "seconds max-rss-KiB uploaded-bytes pulled-bytes"
  local label=$1 before after
  shift
  before=$(cat "$bench/uploaded")
  /usr/bin/time -f "%e %M" -o "$bench/time.out" bash -c '"$@"' _ "$@" >/dev/null 2>"$bench/last.err" || { cat "$bench/last.err"; exit 1; }
  sleep 0.2
  after=$(cat "$bench/uploaded")
  echo "$(cat "$bench/time.out") $((after - before)) $(pulled_bytes "$(cat "$bench/pushed")")" >>"$bench/$label"
}

echo "machine: $(nproc) cores; base $(python3 -c "print(round($base_size/2**20))") MiB compressed in the registry; skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | cut -d' ' -f3), buildah $(buildah --version | cut -d' ' -f3); tagpilot $(git -C "$root" rev-parse --short HEAD)"
for tree in dirac-size large; do
  repo=$bench/$tree
  tag=$(git -C "$repo" tag | head -1)
  n_runs=$runs
  [ "$tree" = large ] && n_runs=1
  rm -f "$bench/$tree.image-shell" "$bench/$tree.image-buildah" "$bench/$tree.image-tagpilot"
  for i in $(seq "$n_runs"); do
    measure "$tree.image-shell" shell_release "$repo" "$tag" "$tree-$i-$RANDOM"
    measure "$tree.image-buildah" buildah_release "$repo" "$tag" "$tree-$i-$RANDOM"
    measure "$tree.image-tagpilot" tagpilot_release "$repo" "$tag" "$tree-$i-$RANDOM"
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
