#!/usr/bin/env bash
# Builds tagpilot and its supervisor, tagpilot-supervisor, for linux/amd64 as static binaries
# (static-pie, glibc linked in), so they run on any base with no libc of its own needed:
# scratch, busybox, Alpine (musl), Debian, EL8/EL9. Host names resolve through /etc/hosts and DNS (glibc 2.34+ has both built in), and
# TLS trusts the base's CA bundle (/etc/ssl/certs/ca-certificates.crt on Debian and Alpine,
# /etc/pki/tls/certs/ca-bundle.crt on EL, or SSL_CERT_FILE).
#
# Needs only the Rust toolchain and glibc's static libraries (libc6-dev, which gcc brings).
# Usage: packaging/build-static.sh [OUT_DIR]    (default: dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
target_dir="${CARGO_TARGET_DIR:-target/static}"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
  cargo build --release --locked --target x86_64-unknown-linux-gnu
mkdir -p "$out"
# The release profile keeps line tables for backtraces; the shipped binaries do without.
for binary in tagpilot tagpilot-supervisor; do
  objcopy --strip-debug "$target_dir/x86_64-unknown-linux-gnu/release/$binary" "$out/$binary"
  chmod 0755 "$out/$binary"
  echo "$out/$binary"
done
