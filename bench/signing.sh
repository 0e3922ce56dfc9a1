#!/usr/bin/env bash
# What signing and attesting add to a release: `tagpilot release --only tarball,image,push` of
# a DIRAC-sized tree (generated: ~1,750 files, 29 MB) to a local registry, without and with
# `image.sign` (a P-256 key), alternating, each push to a fresh repository so every byte moves.
# Both write the provenance and SBOM to the output folder (the SBOM hashes every file); the
# signed one also signs the manifest and attaches both, signed, to the image.
#
#   bash bench/signing.sh [RUNS]     (default 5; needs docker-registry, openssl)
set -euo pipefail
runs=${1:-5}
source "$(dirname "$0")/lib.sh"
[ -d "$bench/dirac-size" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/dirac-size" 27 400

start_registry sign

key=$bench/signing.key
[ -f "$key" ] || openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$key"
repo=$bench/dirac-size
tag=$(git -C "$repo" describe --tags --abbrev=0)

release() { # signed|unsigned run
  local spec=$bench/spec-$1.yaml
  printf 'name: dirac\nimage:\n  repository: %s/%s/dirac-%s\n  install_path: /opt/dirac\n' \
    "$registry" "$1" "$2" >"$spec"
  [ "$1" = signed ] && printf '  sign: { key: SIGNING_KEY }\n' >>"$spec"
  rm -rf "$bench/out-$1"
  local start end
  start=$(date +%s.%N)
  SIGNING_KEY=$key "$tagpilot" release --only tarball,image,push --tag "$tag" --repo "$repo" \
    --pipeline "$spec" --out "$bench/out-$1" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
: >"$bench/sign-unsigned.times"; : >"$bench/sign-signed.times"
for n in $(seq "$runs"); do
  release unsigned "$n" >>"$bench/sign-unsigned.times"
  release signed "$n" >>"$bench/sign-signed.times"
done
unsigned=$(median <"$bench/sign-unsigned.times")
signed=$(median <"$bench/sign-signed.times")
echo "release, unsigned (provenance + SBOM files only): median ${unsigned}s of $runs"
echo "release, signed and attested:                      median ${signed}s of $runs"
echo "added by signing and attaching: $(echo "$signed - $unsigned" | bc)s"
