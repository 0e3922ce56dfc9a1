#!/usr/bin/env bash
# Times the GitOps step and the history read against the shell a user writes instead, on the
# same deployment repository, alternating, in the same run. Medians and the ratio.
#
#   bash bench/deploy.sh [RUNS]      default 5; the repository is built once under $BENCH_DIR
#
# The deployment repository: 200 Kubernetes manifests, and a history of 3,000 deploy commits
# made by tagpilot (with trailers). Served over file:// (no network noise).
#   deploy:  `git clone --depth 1` + `sed -i` of the image line + `git commit` + `git push`
#            vs `tagpilot deploy --env staging --image …` (the same steps, plus: edits only the
#            released repository's references, re-parses the file, refuses a downgrade, and
#            re-applies on a rejected push).
#   history: `git clone --bare` + `git log --format=… trailers` + grep of the environment
#            vs `tagpilot history --env staging --output json`.
set -euo pipefail
runs=${1:-5}
source "$(dirname "$0")/lib.sh"
bench=$bench/deploy
mkdir -p "$bench"
repository=registry.example.org/team/app
digest=sha256:$(printf 'x%.0s' {1..64} | tr x 1)

if [ ! -d "$bench/deployment.git" ]; then
  rm -rf "$bench/seed"
  mkdir -p "$bench/seed/k8s"
  for n in $(seq 200); do
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-%s\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: registry.example.org/team/svc-%s:1.0.0\n' "$n" "$n" >"$bench/seed/k8s/svc-$n.yaml"
  done
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: %s:0.0.1@%s\n' "$repository" "$digest" >"$bench/seed/k8s/app.yaml"
  git -C "$bench/seed" init -q -b main
  git -C "$bench/seed" add -A
  git -C "$bench/seed" -c user.name=t -c user.email=t@e commit -qm seed
  # 3,000 deploys with tagpilot's trailers, made with fast-import.
  python3 - "$bench/seed" "$repository" "$digest" <<'PY' | git -C "$bench/seed" fast-import --quiet
import sys
seed, repository, digest = sys.argv[1:]
template = open(f"{seed}/k8s/app.yaml").read()
for n in range(1, 3001):
    version = f"0.{n // 100}.{n % 100}"
    image = f"{repository}:{version}@{digest}"
    body = template.replace(f"{repository}:0.0.1@{digest}", image).encode()
    message = (f"Deploy app {version} to staging\n\nTagpilot-Release: app {version}\n"
               f"Tagpilot-Image: {image}\nTagpilot-Environment: staging\n").encode()
    sys.stdout.buffer.write(b"commit refs/heads/main\n")
    sys.stdout.buffer.write(f"committer Bot <bot@example.org> {1700000000 + n} +0000\n".encode())
    sys.stdout.buffer.write(b"data %d\n" % len(message) + message)
    if n == 1:
        sys.stdout.buffer.write(b"from refs/heads/main^0\n")
    sys.stdout.buffer.write(b"M 100644 inline k8s/app.yaml\n")
    sys.stdout.buffer.write(b"data %d\n" % len(body) + body + b"\n")
PY
  git clone -q --bare "$bench/seed" "$bench/deployment.git"
fi

cat >"$bench/tagpilot.yaml" <<YAML
name: app
deploy:
  - environment: staging
    repo: file://$bench/deployment.git
    files: [{ file: k8s/app.yaml }]
    author: { name: Bench, email: bench@example.org }
YAML
# tagpilot writes releases v10.N.0 (the shell 9.N.0 in between), so each of its deploys is a
# newer version and really commits.
for run in $(seq "$runs"); do git -C "$bench/seed" tag -f "v10.$run.0" >/dev/null; done
before=$(git -C "$bench/deployment.git" rev-list --count main)

measure() {
  /usr/bin/time -f "%e %M" -o "$bench/time.out" "$@" >/dev/null 2>&1
  cat "$bench/time.out"
}

shell_deploy() {
  local version=$1 work=$bench/shell-work
  rm -rf "$work"
  git clone -q --depth 1 --branch main "file://$bench/deployment.git" "$work"
  sed -i "s|image: $repository:[^ ]*|image: $repository:$version@$digest|" "$work/k8s/app.yaml"
  git -C "$work" -c user.name=Bench -c user.email=bench@example.org commit -qam "Deploy app $version to staging

Tagpilot-Release: app $version
Tagpilot-Image: $repository:$version@$digest
Tagpilot-Environment: staging"
  git -C "$work" push -q origin HEAD:main
}

shell_history() {
  local work=$bench/shell-history
  rm -rf "$work"
  git clone -q --bare --single-branch --branch main "file://$bench/deployment.git" "$work"
  git -C "$work" log --format='%H%x09%aI%x09%an%x09%(trailers:key=Tagpilot-Release,valueonly,separator=)%x09%(trailers:key=Tagpilot-Image,valueonly,separator=)%x09%(trailers:key=Tagpilot-Environment,valueonly,separator=)' main | grep -P '\tstaging$'
}

echo "machine: $(nproc) cores, $(git --version), tagpilot $(git -C "$root" rev-parse --short HEAD)"
: >"$bench/deploy.shell"; : >"$bench/deploy.tagpilot"; : >"$bench/history.shell"; : >"$bench/history.tagpilot"
for run in $(seq "$runs"); do
  export -f shell_deploy shell_history
  export bench repository digest
  measure bash -c "shell_deploy 9.$run.0" >>"$bench/deploy.shell"
  measure env -C "$bench/seed" "$tagpilot" deploy --pipeline "$bench/tagpilot.yaml" --tag "v10.$run.0" \
    --env staging --image "$repository:10.$run.0@$digest" >>"$bench/deploy.tagpilot"
  measure bash -c shell_history >>"$bench/history.shell"
  measure env -C "$bench/seed" "$tagpilot" history --pipeline "$bench/tagpilot.yaml" --env staging --output json >>"$bench/history.tagpilot"
done
after=$(git -C "$bench/deployment.git" rev-list --count main)
[ "$after" = $((before + 2 * runs)) ] || { echo "expected $((2 * runs)) new commits, got $((after - before))" >&2; exit 1; }
count=$(env -C "$bench/seed" "$tagpilot" history --pipeline "$bench/tagpilot.yaml" --env staging --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
python3 - "$bench" "$count" <<'PY'
import statistics, sys
bench, count = sys.argv[1], sys.argv[2]
def load(name):
    rows = [line.split() for line in open(f"{bench}/{name}")]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024, len(rows)
for step, shell in (("deploy", "clone --depth 1 + sed + commit + push"), ("history", "clone --bare + git log trailers + grep")):
    s, s_mib, n = load(f"{step}.shell")
    t, t_mib, _ = load(f"{step}.tagpilot")
    print(f"{step} ({n} runs; history lists {count} deploys):")
    print(f"  shell ({shell}): median {s:6.3f} s  peak {s_mib:6.1f} MiB")
    print(f"  tagpilot {step:<33}: median {t:6.3f} s  peak {t_mib:6.1f} MiB   ratio {t/s:.2f}x the shell's time")
PY
