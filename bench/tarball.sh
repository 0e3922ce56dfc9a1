#!/usr/bin/env bash
# Times `tagpilot tarball` against `git archive --format=tar TAG | gzip -n` (the same gzip level
# class: 6) on the same trees, alternating, in the same run. Reports medians, the ratio and peak
# resident memory (GNU time's %M, the largest process of the pipeline).
#
#   bash bench/tarball.sh [RUNS]        default 5 runs; trees are built once under $BENCH_DIR
#
# Trees: `cpython` (the installed CPython standard library: real code, ~2,400 files, ~85 MB,
# one 45 MB static library) and `large` (a generated ~1 GB source-like tree, 13,000 files).
set -euo pipefail
runs=${1:-5}
source "$(dirname "$0")/lib.sh"
[ -d "$bench/cpython" ] || bash "$root/fixtures/make-cpython-repo.sh" "$bench/cpython"
[ -d "$bench/large" ] || python3 "$root/fixtures/make-large-repo.py" "$bench/large" 1024

# Prints "seconds max-rss-KiB" for one run of the command.
measure() {
  /usr/bin/time -f "%e %M" -o "$bench/time.out" "$@" >/dev/null 2>&1
  cat "$bench/time.out"
}

echo "machine: $(nproc) cores, $(gzip --version | head -1), $(git --version), tagpilot $(git -C "$root" rev-parse --short HEAD)"
for tree in cpython large; do
  repo=$bench/$tree
  tag=$(git -C "$repo" tag | head -1)
  : >"$bench/$tree.shell"
  : >"$bench/$tree.tagpilot"
  for _ in $(seq "$runs"); do
    measure sh -c "git -C '$repo' archive --format=tar '$tag' | gzip -n > '$bench/reference.tar.gz'" >>"$bench/$tree.shell"
    rm -rf "$bench/out"
    measure "$tagpilot" tarball --repo "$repo" --tag "$tag" --out "$bench/out" >>"$bench/$tree.tagpilot"
  done
  content=$(git -C "$repo" archive --format=tar "$tag" | wc -c)
  python3 - "$tree" "$bench" "$content" <<'PY'
import os, statistics, sys, glob
tree, bench, content = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(kind):
    rows = [line.split() for line in open(f"{bench}/{tree}.{kind}")]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024, len(rows)
shell_s, shell_mib, n = load("shell")
tp_s, tp_mib, _ = load("tagpilot")
ref = os.path.getsize(f"{bench}/reference.tar.gz")
ours = os.path.getsize(glob.glob(f"{bench}/out/*.tar.gz")[0])
print(f"{tree}: tar {content/1e6:.0f} MB, {n} runs each")
print(f"  git archive | gzip -n : median {shell_s:6.2f} s  peak {shell_mib:6.1f} MiB  output {ref/1e6:7.1f} MB")
print(f"  tagpilot tarball      : median {tp_s:6.2f} s  peak {tp_mib:6.1f} MiB  output {ours/1e6:7.1f} MB")
print(f"  tagpilot is {shell_s/tp_s:.1f}x faster, output {100*(ours-ref)/ref:+.2f}% size")
PY
done
