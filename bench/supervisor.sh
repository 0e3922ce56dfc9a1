#!/usr/bin/env bash
# Differential check of tagpilot-supervisor against ContainerPilot 3.8, the reference: the
# same configs under both (events per source, exit codes, the calls that reach a Consul fake),
# then binary size, start-up latency and memory, side by side in one run.
#
# Needs the reference binary in ../shared/containerpilot/ (see its README): it is not part of
# this repository, so this is a benchmark and not a test. Without it, says so and stops.
# Usage: bench/supervisor.sh        (results also in $BENCH_DIR/supervisor.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
reference=${CONTAINERPILOT_REFERENCE:-$root/../shared/containerpilot/containerpilot}
if [ ! -x "$reference" ]; then
  echo "no ContainerPilot reference binary at $reference: nothing to compare against (set CONTAINERPILOT_REFERENCE)"
  exit 0
fi
# The shipped form: the static build, stripped (packaging/build-static.sh).
bash "$root/packaging/build-static.sh" "$bench/static" >/dev/null
ours=$bench/static/tagpilot-supervisor
python3 "$root/bench/supervisor_diff.py" "$reference" "$ours" "$bench/supervisor" \
  "$root/bench/consul_fake.py" | tee "$bench/supervisor.md"
