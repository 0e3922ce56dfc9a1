# The three ways to release an image that the release benchmarks compare, and how they are
# measured; sourced after lib.sh by image.sh and patches.sh.
#
#   start_counting_proxy                 every push goes to $pushto, which counts the bytes sent
#   shell_release REPO TAG NAME BASE     git archive | gzip -n, skopeo, umoci, skopeo
#   buildah_release REPO TAG NAME BASE   git archive | gzip -n, buildah bud (vfs) + push
#   tagpilot_release REPO TAG NAME BASE [LAYERING]
#   measure LABEL FUNCTION ARGS...       appends "seconds peak-KiB uploaded-bytes pulled-bytes"
#
# BASE is `scratch` or a repository in the registry (`base/debian:12`). Each release pushes
# `$pushto/TOOL/NAME:VERSION` and leaves that reference in $bench/pushed. "Pulled" is what a node
# that has the base and the previous release ($bench/previous, if set) downloads.

start_counting_proxy() {
  local upstream=${registry##*:} port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 "$root/bench/count_proxy.py" "$port" "$upstream" "$bench/uploaded" &
  proxy_pid=$!
  trap 'kill $registry_pid $proxy_pid 2>/dev/null' EXIT
  pushto=127.0.0.1:$port
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
}

version_of() { # tag → version (v1.0.2 → 1.0.2)
  echo "${1#v}"
}

shell_release() { # repo tag name base
  local repo=$1 tag=$2 name=$3 base=$4 work=$bench/shell-work version
  version=$(version_of "$tag")
  rm -rf "$work" && mkdir -p "$work"
  git -C "$repo" archive --format=tar --prefix=dirac/ "$tag" | gzip -n >"$work/dirac.tar.gz"
  if [ "$base" = scratch ]; then
    umoci init --layout "$work/layout"
    umoci new --image "$work/layout:base"
  else
    skopeo copy --quiet --src-tls-verify=false "docker://$pushto/$base" "oci:$work/layout:base"
  fi
  umoci unpack --rootless --image "$work/layout:base" "$work/bundle"
  mkdir -p "$work/bundle/rootfs/opt/dirac" "$work/bundle/rootfs/etc"
  tar -xzf "$work/dirac.tar.gz" -C "$work/bundle/rootfs/opt/dirac" --strip-components=1
  cp "$root/images/dirac/containerpilot.json5" "$work/bundle/rootfs/etc/containerpilot.json5"
  umoci repack --image "$work/layout:app" "$work/bundle"
  umoci config --image "$work/layout:app" --config.entrypoint /usr/local/bin/containerpilot \
    --config.env CONTAINERPILOT=/etc/containerpilot.json5 --config.env DIRAC_ROOT=/opt/dirac
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:app" "docker://$pushto/shell/$name:$version"
  echo "$pushto/shell/$name:$version" >"$bench/pushed"
}

buildah_release() { # repo tag name base
  local repo=$1 tag=$2 name=$3 base=$4 work=$bench/buildah-work version from
  local store=(--storage-driver vfs --root "$work/storage" --runroot "$work/run")
  version=$(version_of "$tag")
  from=$base
  [ "$base" = scratch ] || from=$pushto/$base
  rm -rf "$work" && mkdir -p "$work/ctx"
  git -C "$repo" archive --format=tar --prefix=dirac/ "$tag" | gzip -n >"$work/ctx/dirac.tar.gz"
  cp "$root/images/dirac/containerpilot.json5" "$work/ctx/containerpilot.json5"
  cat >"$work/ctx/Containerfile" <<DOCKERFILE
FROM $from
ADD dirac.tar.gz /opt/
COPY containerpilot.json5 /etc/containerpilot.json5
ENV CONTAINERPILOT=/etc/containerpilot.json5 DIRAC_ROOT=/opt/dirac
ENTRYPOINT ["/usr/local/bin/containerpilot"]
DOCKERFILE
  buildah "${store[@]}" bud --quiet --tls-verify=false --isolation chroot \
    -t "$pushto/buildah/$name:$version" "$work/ctx" >/dev/null
  buildah "${store[@]}" push --quiet --tls-verify=false "$pushto/buildah/$name:$version"
  echo "$pushto/buildah/$name:$version" >"$bench/pushed"
  rm -rf "$work"
}

tagpilot_release() { # repo tag name base [layering]
  local repo=$1 tag=$2 name=$3 base=$4 layering=${5:-single} from=scratch
  [ "$base" = scratch ] || from=$pushto/$base
  cat >"$bench/tagpilot.yaml" <<YML
name: dirac
tarball: { prefix: "dirac/" }
image:
  repository: $pushto/tagpilot/$name
  base: $from
  install_path: /opt/dirac
  layering: $layering
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

export -f shell_release buildah_release tagpilot_release version_of
export bench registry root tagpilot

# Layer digests of an image, one per line.
layer_digests() { # reference
  skopeo inspect --raw --tls-verify=false "docker://$1" | python3 -c "
import json, sys
print('\n'.join(l['digest'] for l in json.load(sys.stdin)['layers']))"
}

# The compressed layers of an image that neither the base nor the previous release has.
pulled_bytes() { # reference
  local have
  have=$(cat "$bench/base-layers" 2>/dev/null; [ -s "$bench/previous" ] && layer_digests "$(cat "$bench/previous")")
  skopeo inspect --raw --tls-verify=false "docker://$1" | python3 -c "
import json, sys
have = set(sys.argv[1].split())
print(sum(l['size'] for l in json.load(sys.stdin)['layers'] if l['digest'] not in have))" "$have"
}

measure() { # label function args...
  local label=$1 before after
  shift
  export pushto
  before=$(cat "$bench/uploaded")
  /usr/bin/time -f "%e %M" -o "$bench/time.out" bash -c '"$@"' _ "$@" >/dev/null 2>"$bench/last.err" || { cat "$bench/last.err"; exit 1; }
  sleep 0.2
  after=$(cat "$bench/uploaded")
  echo "$(cat "$bench/time.out") $((after - before)) $(pulled_bytes "$(cat "$bench/pushed")")" >>"$bench/$label"
}
