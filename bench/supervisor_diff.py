#!/usr/bin/env python3
"""Runs the same configs under ContainerPilot and tagpilot-supervisor and compares what
happens: the events each source publishes, in order; exit codes; what reaches a Consul fake;
start-up latency and memory. Usage: supervisor_diff.py CONTAINERPILOT OURS WORKDIR FAKE"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

containerpilot, ours, work, fake = sys.argv[1:5]
os.makedirs(work, exist_ok=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Consul:
    def __init__(self, name):
        self.port = free_port()
        self.log = os.path.join(work, f"consul-{name}.jsonl")
        open(self.log, "w").close()
        self.process = subprocess.Popen([sys.executable, fake, str(self.port), self.log])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)

    def add(self, sid, name, address, port):
        body = json.dumps({"ID": sid, "Name": name, "Address": address, "Port": port}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{self.port}/fake/add", body, method="PUT"))

    def calls(self):
        calls = []
        for line in open(self.log):
            call = json.loads(line)
            if not call["path"].startswith("/fake/"):
                calls.append(call)
        return calls

    def stop(self):
        self.process.kill()
        self.process.wait()


def run(binary, name, config, consul=None, actions=(), limit=15):
    """Runs `config` until it exits (or `limit`); `actions` are (seconds, what) pairs."""
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    socket_path = os.path.join(folder, "cp.sock")
    text = (config.replace("DIR", folder).replace("SOCKET", socket_path)
            .replace("CONSUL", f"127.0.0.1:{consul.port}" if consul else "127.0.0.1:1"))
    path = os.path.join(folder, "cp.json5")
    open(path, "w").write(text)
    for leftover in os.listdir(folder):
        if leftover not in ("cp.json5",):
            os.remove(os.path.join(folder, leftover))
    log_path = os.path.join(folder, "log.txt")
    log = open(log_path, "w")
    started = time.time()
    process = subprocess.Popen([binary, "-config", path], stdout=log, stderr=subprocess.STDOUT,
                               env={"PATH": "/usr/bin:/bin"})
    pending = sorted(actions, key=lambda a: a[0])
    code = None
    while time.time() - started < limit:
        now = time.time() - started
        while pending and pending[0][0] <= now:
            _, what = pending.pop(0)
            if what == "TERM":
                process.send_signal(signal.SIGTERM)
            elif callable(what):
                what(binary, path)
        code = process.poll()
        if code is not None:
            break
        time.sleep(0.02)
    took = time.time() - started
    if code is None:
        process.kill()
        process.wait()
        code = "killed"
    log.close()
    events = [m.group(1) for m in re.finditer(r" event: \{([^}]*)\}", open(log_path).read())]
    return {"code": code, "events": events, "seconds": took, "log": log_path}


def by_source(events):
    """Each source's codes in order: the order across sources is a race in ContainerPilot, and
    so is the order of a stopping job's exit events and its Stopped (it does not wait for the
    exit), so what follows a Stopping is compared as a set."""
    sources = {}
    for event in events:
        code, _, source = event.partition(" ")
        if code == "Error":  # ContainerPilot's Error events carry the message as their source
            source = source.split(":")[0]
        sources.setdefault(source, []).append(code)
    for source, codes in sources.items():
        if "Stopping" in codes:
            at = codes.index("Stopping") + 1
            sources[source] = codes[:at] + sorted(codes[at:])
    return sources


def consul_shape(calls):
    """The calls, with repeats of the same call folded: ('PUT', path, times)."""
    shape = []
    for call in calls:
        path = call["path"]
        key = (call["method"], path)
        if shape and shape[-1][0] == key:
            shape[-1][1] += 1
        else:
            shape.append([key, 1])
    return [(m, p, n) for (m, p), n in shape]


def client(*args):
    return lambda binary, path: subprocess.run([binary, "-config", path, *args],
                                               capture_output=True)


SCENARIOS = [
    ("restarts and stop events",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "a", exec: ["sh", "-c", "exit 3"], restarts: 2 },'
     '{ name: "b", exec: "true", when: { source: "a", once: "stopped" } } ] }', False, ()),
    ("each exitSuccess chain",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "first", exec: "true" },'
     '{ name: "second", exec: "true", when: { source: "first", once: "exitSuccess" } },'
     '{ name: "third", exec: ["sh", "-c", "exit 1"], when: { source: "second", once: "exitSuccess" } } ] }',
     False, ()),
    ("exec timeout",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "slow", exec: ["sleep", "30"], timeout: "300ms" } ] }', False, ()),
    ("SIGTERM with a job that ignores it",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, stopTimeout: 2, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "stubborn", exec: ["sh", "-c", "trap \'\' TERM; while true; do sleep 0.2; done"] },'
     '{ name: "cleanup", exec: "true", when: { source: "stubborn", once: "stopping" } } ] }',
     False, ((0.5, "TERM"),)),
    ("service, heartbeats, deregistration",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: ["static:192.0.2.10"],'
     '  health: { exec: "true", interval: 1, ttl: 3 } } ] }', True, ((3.5, "TERM"),)),
    ("failing check",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: ["static:192.0.2.10"],'
     '  health: { exec: ["sh", "-c", "test ! -f DIR/log.txt.stop && touch DIR/log.txt.stop"], interval: 1, ttl: 2 } } ] }',
     True, ((3.5, "TERM"),)),
    ("watch sees a second instance",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"},'
     ' watches: [ { name: "db", interval: 1 } ], jobs: ['
     '{ name: "react", exec: "true", when: { source: "watch.db", each: "changed" } } ] }',
     True, ()),
    ("maintenance on and off",
     '{ consul: "CONSUL", logging: {level: "DEBUG"}, control: {socket: "SOCKET"}, jobs: ['
     '{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: ["static:192.0.2.10"],'
     '  health: { exec: "true", interval: 1, ttl: 3 } } ] }',
     True, ((1.5, client("-maintenance", "enable")), (2.5, client("-maintenance", "disable")),
            (4.5, "TERM"))),
]


def compare():
    rows = []
    for title, config, uses_consul, actions in SCENARIOS:
        results = {}
        for name, binary in (("containerpilot", containerpilot), ("tagpilot-supervisor", ours)):
            consul = Consul(name) if uses_consul else None
            steps = list(actions)
            if title.startswith("watch"):
                steps = [(1.5, lambda b, p, c=consul: c.add("db-1", "db", "10.0.0.1", 5432)),
                         (3.0, lambda b, p, c=consul: c.add("db-2", "db", "10.0.0.2", 5432)),
                         (5.0, "TERM")]
            slug = re.sub(r"[^a-z]+", "-", title.lower()) + "-" + name
            result = run(binary, slug, config, consul, steps)
            result["consul"] = consul_shape(consul.calls()) if consul else []
            if consul:
                consul.stop()
            results[name] = result
        a, b = results["containerpilot"], results["tagpilot-supervisor"]
        same_events = by_source(a["events"]) == by_source(b["events"])
        # Heartbeat counts depend on timing; compare the calls and their order, not counts.
        shape = lambda r: [(m, re.sub(r"-[^/]+$", "-HOST", p)) for m, p, _ in r["consul"]]
        same_consul = shape(a) == shape(b)
        rows.append((title, a, b, same_events, same_consul))
    return rows


def rss_kb(pid):
    total = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total


def memory(binary, jobs):
    """RSS with one plain job (idle), or with `jobs` service jobs health-checked every second."""
    consul = Consul("memory")
    job = '{ name: "job%d", exec: ["sleep", "60"], port: %d, interfaces: ["static:192.0.2.10"], health: { exec: "true", interval: 1, ttl: 3 } }'
    listed = ", ".join(job % (i, 8000 + i) for i in range(jobs)) if jobs else '{ name: "idle", exec: ["sleep", "60"] }'
    config = '{ consul: "CONSUL", control: {socket: "SOCKET"}, jobs: [ %s ] }' % listed
    folder = os.path.join(work, f"memory-{jobs}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "cp.json5")
    open(path, "w").write(config.replace("SOCKET", os.path.join(folder, "cp.sock"))
                          .replace("CONSUL", f"127.0.0.1:{consul.port}"))
    process = subprocess.Popen([binary, "-config", path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    samples = []
    for _ in range(10):
        time.sleep(0.5)
        samples.append(rss_kb(process.pid))
    process.send_signal(signal.SIGTERM)
    process.wait()
    consul.stop()
    return statistics.median(samples[4:]), max(samples)


def startup_ms(binary, runs=15):
    folder = os.path.join(work, "startup")
    os.makedirs(folder, exist_ok=True)
    flag = os.path.join(folder, "started")
    path = os.path.join(folder, "cp.json5")
    open(path, "w").write('{ consul: "127.0.0.1:1", control: {socket: "%s"}, jobs: [ '
                          '{ name: "first", exec: ["touch", "%s"] }, { name: "keep", exec: ["sleep", "30"] } ] }'
                          % (os.path.join(folder, "cp.sock"), flag))
    times = []
    for _ in range(runs):
        if os.path.exists(flag):
            os.remove(flag)
        started = time.perf_counter()
        process = subprocess.Popen([binary, "-config", path], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
        while not os.path.exists(flag):
            time.sleep(0.0005)
        times.append((time.perf_counter() - started) * 1000)
        process.send_signal(signal.SIGTERM)
        process.wait()
    return statistics.median(times)


rows = compare()
print("| scenario | ContainerPilot exit | ours exit | events per source | Consul calls |")
print("| --- | --- | --- | --- | --- |")
for title, a, b, same_events, same_consul in rows:
    consul = "same" if same_consul else "differ"
    if not a["consul"] and not b["consul"]:
        consul = "none"
    print(f"| {title} | {a['code']} ({a['seconds']:.1f} s) | {b['code']} ({b['seconds']:.1f} s) "
          f"| {'same' if same_events else 'differ'} | {consul} |")
for title, a, b, same_events, same_consul in rows:
    if not same_events:
        print(f"\n{title}: events differ\n  containerpilot: {by_source(a['events'])}\n  ours:           {by_source(b['events'])}")
    if not same_consul:
        print(f"\n{title}: Consul calls differ\n  containerpilot: {a['consul']}\n  ours:           {b['consul']}")
print()
print("| measure | ContainerPilot 3.8 | tagpilot-supervisor |")
print("| --- | --- | --- |")
print(f"| binary size | {os.path.getsize(containerpilot):,} B | {os.path.getsize(ours):,} B |")
print(f"| start-up to first job (median of 15) | {startup_ms(containerpilot):.1f} ms | {startup_ms(ours):.1f} ms |")
for jobs, label in ((0, "idle (one job, no checks)"), (10, "10 service jobs checked every 1 s")):
    cp_rss, cp_peak = memory(containerpilot, jobs)
    our_rss, our_peak = memory(ours, jobs)
    print(f"| RSS, {label}: median (peak) | {cp_rss/1024:.1f} MiB ({cp_peak/1024:.1f}) | {our_rss/1024:.1f} MiB ({our_peak/1024:.1f}) |")
