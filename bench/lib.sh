# Shared by the benchmark scripts (`source "$(dirname "$0")/lib.sh"`): the repository root,
# the work folder ($BENCH_DIR, default /tmp/tagpilot-bench), a release build of tagpilot,
# and `start_registry NAME`, a local docker-registry for the run (stopped when it ends).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=${BENCH_DIR:-/tmp/tagpilot-bench}
mkdir -p "$bench"
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
tagpilot=$root/target/release/tagpilot

# Starts a registry on a free loopback port, its data in $bench/registry-NAME-data; sets
# $registry to its `host:port`.
start_registry() {
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  registry=127.0.0.1:$port
  cat >"$bench/registry-$name.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $bench/registry-$name-data }, delete: { enabled: true } }
http: { addr: $registry }
YML
  docker-registry serve "$bench/registry-$name.yml" >"$bench/registry-$name.log" 2>&1 &
  registry_pid=$!
  trap 'kill $registry_pid 2>/dev/null' EXIT
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
}
