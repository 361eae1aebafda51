#!/usr/bin/env python3
"""Device agent benchmarks (issue: device agent, first slice).

Measures, with a real eddyd following a real signed fleet repository on this machine:
  1. idle resident memory of eddyd (VmRSS and PSS of the resident process; the update worker
     exists only during a job), next to the peak resident memory of the `git fetch` that a
     shell-script updater would run for the same no-op poll (reference), and the update
     worker's own peak RSS during a no-op poll (from eddyd's debug log);
  2. CPU time of a poll that finds nothing new: eddyd's own plus the update workers' it starts
     (the worker is a child eddyd waits for, so its time is in eddyd's cutime and cstime; a
     no-op poll starts none once eddyd has seen the tip up to date), next to the CPU time of
     that `git fetch`; over file://, and again over git:// (git daemon) and http:// (lighttpd +
     git http-backend) with a second eddyd; and the CPU time of merely starting the worker
     executable (loading its libraries) for comparison;
  3. time from a failing health verdict to the previous version answering again, next to the
     cold start of the same app by hand (reference: how long the app itself takes to come up);
  4. the no-op poll's CPU time and eddyd's VmRSS, PSS and USS (and its largest mappings) without
     a hub and with one: a real eddy-hub following the same
     repository, over plain HTTP and over HTTPS (a test CA made with openssl, hub.ca_file), the
     device's rollout admitted; each poll also syncs with the hub. With a second build folder
     (BEFORE_BUILD_DIR, for example main's), the same polls by that build's eddyd in the same
     run, for a before/after comparison.

Usage: bench/device_bench.py [BUILD_DIR [BEFORE_BUILD_DIR]]   (default: build/). Prints a
Markdown table.
"""
import json
import os
import resource
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build"))
EDDYD = os.path.join(BUILD, "daemon", "eddyd")
WORKER = os.path.join(BUILD, "daemon", "eddyd-worker")
EDDY = os.path.join(BUILD, "cli", "eddy")
EDDY_HUB = os.path.join(BUILD, "fleet", "eddy-hub")
BEFORE = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME="/nonexistent", GIT_AUTHOR_NAME="Bench",
               GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="Bench",
               GIT_COMMITTER_EMAIL="bench@example.com")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, env=kw.pop("env", GIT_ENV), **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_version(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /version HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode().strip() if b"200 OK" in data else None
    except OSError:
        return None


class Fleet:
    def __init__(self, root, port):
        self.root, self.port = root, port
        self.repo = os.path.join(root, "fleet")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(root, "key"))
        with open(os.path.join(root, "key.pub")) as f:
            pub = f.read().strip()
        self.allowed = os.path.join(root, "allowed_signers")
        with open(self.allowed, "w") as f:
            f.write("bench@example.com " + pub + "\n")
        run("git", "init", "-q", "-b", "main", self.repo)
        run("git", "-C", self.repo, "config", "gpg.format", "ssh")
        run("git", "-C", self.repo, "config", "user.signingkey", os.path.join(root, "key"))

    def publish(self, version, healthy):
        b = os.path.join(self.root, "bundle-" + version)
        os.makedirs(os.path.join(b, "bin"))
        os.makedirs(os.path.join(b, "www"))
        with open(os.path.join(b, "bin", "app"), "w") as f:
            f.write("#!/bin/sh\nexec python3 -m http.server %d --bind 127.0.0.1 --directory www\n" % self.port)
        os.chmod(os.path.join(b, "bin", "app"), 0o755)
        with open(os.path.join(b, "www", "version"), "w") as f:
            f.write(version + "\n")
        if healthy:
            with open(os.path.join(b, "www", "healthz"), "w") as f:
                f.write("ok\n")
        os.makedirs(os.path.join(self.repo, "payloads"), exist_ok=True)
        os.makedirs(os.path.join(self.repo, "releases"), exist_ok=True)
        os.makedirs(os.path.join(self.repo, "rollouts"), exist_ok=True)
        rel = "payloads/app-%s.tar.zst" % version
        subprocess.run("tar -C '%s' -cf - . | zstd -q -3 -o '%s/%s'" % (b, self.repo, rel), shell=True, check=True)
        digest = run("sha256sum", os.path.join(self.repo, rel)).stdout.split()[0]
        size = os.path.getsize(os.path.join(self.repo, rel))
        with open(os.path.join(self.repo, "releases", "app-%s.yaml" % version), "w") as f:
            f.write(f"""apiVersion: eddy/v1
kind: Release
metadata: {{name: app-{version}}}
spec:
  target: app
  version: {version}
  payload: {{type: app, path: {rel}, sha256: {digest}, size: {size}}}
  analysis:
    interval: 200ms
    iterations: 5
    threshold: 2
    probes:
      - {{name: health, http: {{url: "http://127.0.0.1:{self.port}/healthz", timeout: 1s}}}}
""")
        with open(os.path.join(self.repo, "rollouts", "app.yaml"), "w") as f:
            f.write(f"apiVersion: eddy/v1\nkind: Rollout\nmetadata: {{name: app}}\nspec:\n"
                    f"  release: app-{version}\n  steps: [100]\n")
        run("git", "-C", self.repo, "add", "-A")
        run("git", "-C", self.repo, "commit", "-q", "-S", "-m", "app " + version)


def proc_cpu_seconds(pid):
    """(own, children) user + system time of pid: eddyd itself, and the update workers it
    started and waited for (the supervised app runs on and is not counted)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_memory(pid):
    """VmRSS, PSS and USS (private clean + dirty) of pid in KiB, and the same per mapping (file
    name, [heap], [stack] or [anon]), from /proc/PID/smaps."""
    total = {"Rss": 0, "Pss": 0, "Uss": 0}
    per = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":"):
                name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
                per.setdefault(name, {"Rss": 0, "Pss": 0, "Uss": 0})
                continue
            key = {"Rss:": "Rss", "Pss:": "Pss", "Private_Clean:": "Uss", "Private_Dirty:": "Uss"}.get(parts[0])
            if key:
                per[name][key] += int(parts[1])
                total[key] += int(parts[1])
    return total, per


def describe_mappings(per, limit=12):
    """The largest mappings by VmRSS, as `name Rss/Pss/Uss` in KiB."""
    top = sorted(per.items(), key=lambda kv: -kv[1]["Rss"])[:limit]
    return ", ".join("%s %d/%d/%d" % (n, v["Rss"], v["Pss"], v["Uss"]) for n, v in top)


def children_usage():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss


def git_fetch_cpu_ms(root, url, polls):
    """CPU time of a no-op `git fetch` of main from url into a bare clone, and git's peak RSS."""
    clone = os.path.join(root, "ref-clone-" + str(abs(hash(url))))
    run("git", "clone", "-q", "--bare", url, clone)
    c0, _ = children_usage()
    for _ in range(polls):
        run("git", "-C", clone, "fetch", "-q", "origin", "+refs/heads/main:refs/heads/main")
    c1, rss = children_usage()
    return (c1 - c0) / polls * 1000, rss


class GitServers:
    """git daemon and lighttpd + git http-backend serving the fleet repository's folder."""

    def __init__(self, root, repo):
        base, name = os.path.split(repo)
        work = os.path.join(root, "servers")
        os.makedirs(os.path.join(work, "htdocs"))
        git_port, http_port = free_port(), free_port()
        self.procs = [subprocess.Popen(["git", "daemon", "--listen=127.0.0.1", "--port=%d" % git_port,
                                        "--base-path=" + base, "--export-all", "--reuseaddr"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        conf = os.path.join(work, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f"""server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.bind = "127.0.0.1"
server.port = {http_port}
server.document-root = "{work}/htdocs"
server.errorlog = "{work}/lighttpd-error.log"
alias.url = ("/git" => "/usr/lib/git-core/git-http-backend")
$HTTP["url"] =~ "^/git" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{base}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
""")
        self.procs.append(subprocess.Popen(["lighttpd", "-D", "-f", conf], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        for port in (git_port, http_port):
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.01)
        self.urls = [("git:// (git daemon)", "git://127.0.0.1:%d/%s" % (git_port, name)),
                     ("http:// (lighttpd + git http-backend)", "http://127.0.0.1:%d/git/%s" % (http_port, name))]

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def start_git_servers(root, repo):
    return GitServers(root, repo)


def device_noop_poll_cpu(root, name, url, fleet, polls, build=BUILD, hub=None, quiet_outcomes=("up-to-date",),
                         with_memory=False):
    """A second eddyd following url (its app restarted by a command, not supervised), from
    `build`, with `hub` (url, token, ca_file or None) if given: the CPU of its no-op polls, in
    total and split into eddyd's own and its workers', in ms per poll, and its VmRSS after them
    (with_memory: and proc_memory's totals and mappings after them)."""
    dev = tempfile.mkdtemp(prefix="device-", dir=root)
    cfg = os.path.join(dev, "eddyd.yaml")
    hub_section = ""
    if hub:
        hub_url, token, ca_file = hub
        with open(os.path.join(dev, "token"), "w") as f:
            f.write(token + "\n")
        hub_section = "hub: {url: \"%s\", token_file: %s/token%s}\n" % (
            hub_url, dev, ", ca_file: " + ca_file if ca_file else "")
    with open(cfg, "w") as f:
        f.write(f"""device: {{id: bench-02, labels: {{site: bench}}}}
source: {{url: "{url}", branch: main, interval: 1h, allowed_signers: {fleet.allowed}}}
data_dir: {dev}/data
socket: {dev}/eddyd.sock
apps:
  app: {{dir: {dev}/app, restart: ["true"]}}
{hub_section}""")
    env = dict(os.environ, EDDY_SOCKET=os.path.join(dev, "eddyd.sock"))
    eddyd = subprocess.Popen([os.path.join(build, "daemon", "eddyd"), "--config", cfg],
                             env=dict(os.environ, EDDY_WORKER=os.path.join(build, "daemon", "eddyd-worker")),
                             stderr=open(os.path.join(dev, "log"), "w"), start_new_session=True)
    try:
        for _ in range(500):
            if subprocess.run([EDDY, "status"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.01)
        out = subprocess.run([EDDY, "check", "--json"], env=env, check=True, capture_output=True, text=True).stdout
        assert json.loads(out)["outcome"] in ("updated",) + quiet_outcomes, out
        own0, workers0 = proc_cpu_seconds(eddyd.pid)
        for _ in range(polls):
            out = subprocess.run([EDDY, "check", "--json"], env=env, check=True, capture_output=True, text=True).stdout
            assert json.loads(out)["outcome"] in quiet_outcomes, out
        own1, workers1 = proc_cpu_seconds(eddyd.pid)
        rss_kib = proc_rss_kib(eddyd.pid)  # after asking the server itself 300 times
        memory = proc_memory(eddyd.pid)
    finally:
        eddyd.terminate()
        eddyd.wait(timeout=20)
    own_ms = (own1 - own0) / polls * 1000
    workers_ms = (workers1 - workers0) / polls * 1000
    if with_memory:
        return own_ms + workers_ms, own_ms, workers_ms, rss_kib / 1024, memory
    return own_ms + workers_ms, own_ms, workers_ms, rss_kib / 1024


class Hub:
    """A real eddy-hub following the fleet repository, on loopback (the OS picks the port), plain
    HTTP or, with `tls`, HTTPS with a certificate for 127.0.0.1 from a CA made here."""

    def __init__(self, root, fleet, tls, build=BUILD):
        self.dir = tempfile.mkdtemp(prefix="hub-", dir=root)
        self.token = "bench-device-token-0123456789"
        self.ca_file = None
        with open(os.path.join(self.dir, "device-tokens"), "w") as f:
            f.write("bench-02 %s\n" % self.token)
        with open(os.path.join(self.dir, "operator-tokens"), "w") as f:
            f.write("bench operator-token-0123456789\n")
        tls_line = ""
        if tls:
            d = self.dir
            self.ca_file = os.path.join(d, "ca.crt")
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", os.path.join(d, "ca.key"), "-out", self.ca_file, "-days", "30", "-subj", "/CN=bench CA")
            run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", os.path.join(d, "hub.key"), "-out", os.path.join(d, "hub.csr"), "-subj", "/CN=127.0.0.1")
            with open(os.path.join(d, "ext"), "w") as f:
                f.write("subjectAltName=IP:127.0.0.1\n")
            run("openssl", "x509", "-req", "-in", os.path.join(d, "hub.csr"), "-CA", self.ca_file, "-CAkey",
                os.path.join(d, "ca.key"), "-CAcreateserial", "-out", os.path.join(d, "hub.crt"), "-days", "30",
                "-extfile", os.path.join(d, "ext"))
            tls_line = "tls: {cert: %s/hub.crt, key: %s/hub.key}\n" % (d, d)
        cfg = os.path.join(self.dir, "hub.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listen: "127.0.0.1:0"
{tls_line}source: {{url: "file://{fleet.repo}", branch: main, interval: 1h, allowed_signers: {fleet.allowed}}}
data_dir: {self.dir}/data
devices: {{tokens: {self.dir}/device-tokens}}
operators: {{tokens: {self.dir}/operator-tokens}}
tick: 1s
""")
        self.proc = subprocess.Popen([os.path.join(build, "fleet", "eddy-hub"), "--config", cfg],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        url_file = os.path.join(self.dir, "data", "url")
        for _ in range(3000):
            if os.path.exists(url_file) or self.proc.poll() is not None:
                break
            time.sleep(0.01)
        with open(url_file) as f:
            self.url = f.read().strip()
        # Until the hub has accepted the fleet commit, it gates nothing (503 on rollout routes).
        context = ssl.create_default_context(cafile=self.ca_file) if tls else None
        request = urllib.request.Request(self.url + "/v1/rollouts/app",
                                         headers={"Authorization": "Bearer operator-token-0123456789"})
        for _ in range(3000):
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except urllib.error.HTTPError:
                pass
            time.sleep(0.01)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def start_device(cfg, dev, env, log_mode):
    """Starts eddyd on cfg, waits until it answers `eddy status`, and polls once."""
    eddyd = subprocess.Popen([EDDYD, "--config", cfg], stderr=open(os.path.join(dev, "log"), log_mode),
                             start_new_session=True)
    for _ in range(500):
        if subprocess.run([EDDY, "status"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.01)
    subprocess.run([EDDY, "check"], env=env, check=True, capture_output=True)
    return eddyd


def main():
    root = tempfile.mkdtemp(prefix="eddy-bench-")
    eddyd = None
    try:
        port = free_port()
        fleet = Fleet(root, port)
        fleet.publish("1.0.0", True)
        dev = os.path.join(root, "device")
        os.makedirs(dev)
        cfg = os.path.join(dev, "eddyd.yaml")
        with open(cfg, "w") as f:
            f.write(f"""device: {{id: bench-01, labels: {{site: bench}}}}
source: {{url: "file://{fleet.repo}", branch: main, interval: 1h, allowed_signers: {fleet.allowed}}}
data_dir: {dev}/data
socket: {dev}/eddyd.sock
log_level: debug
apps:
  app: {{dir: {dev}/app, run: [bin/app]}}
""")
        env = dict(os.environ, EDDY_SOCKET=os.path.join(dev, "eddyd.sock"))
        eddyd = start_device(cfg, dev, env, "w")
        assert http_version(port) == "1.0.0", "v1 not serving"

        # 1 + 2: idle memory and the CPU of polls that find nothing new.
        time.sleep(1.0)
        rss = proc_rss_kib(eddyd.pid)
        rollup = {}
        with open("/proc/%d/smaps_rollup" % eddyd.pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    rollup[parts[0].rstrip(":")] = int(parts[1])
        if os.environ.get("EDDY_BENCH_SMAPS"):
            subprocess.run("awk '/^[0-9a-f]+-/{name=$6} /^Rss:/{r[name]+=$2} END{for(n in r) if (r[n]>200) print r[n], n}' "
                           "/proc/%d/smaps | sort -rn | head -25" % eddyd.pid, shell=True)
        polls = 300  # /proc's CPU times count in 10 ms ticks: 300 polls resolve 0.03 ms
        own0, workers0 = proc_cpu_seconds(eddyd.pid)
        for _ in range(polls):
            subprocess.run([EDDY, "check", "--json"], env=env, check=True, capture_output=True)
        own1, workers1 = proc_cpu_seconds(eddyd.pid)
        own_poll_ms = (own1 - own0) / polls * 1000
        worker_poll_ms = (workers1 - workers0) / polls * 1000
        eddy_poll_ms = own_poll_ms + worker_poll_ms
        # The workers that ran (the poll that installed v1, and the one after it, which found
        # nothing new and let eddyd answer later polls alone): peak RSS and the CPU of the
        # cheapest, the cost of a no-op poll that needs a worker (https://, a hub).
        with open(os.path.join(dev, "log")) as f:
            lines = [line for line in f if "peak RSS " in line and ": poll took " in line]
        peaks = [float(line.split("peak RSS ")[1].split()[0]) for line in lines]
        worker_peak_mib = max(peaks) if peaks else float("nan")
        worker_noop_ms = min(float(line.split(" ms of CPU")[0].rsplit(" ", 1)[1]) for line in lines) if lines else float("nan")
        # Starting the worker executable by hand (it prints its usage and exits): the cost of
        # loading its libraries, which every poll pays.
        # (Builds from before the update worker have none: the bench still measures them.)
        worker_start_ms = float("nan")
        if os.path.exists(WORKER):
            c0, _ = children_usage()
            for _ in range(polls):
                subprocess.run([WORKER], capture_output=True)
            c1, _ = children_usage()
            worker_start_ms = (c1 - c0) / polls * 1000
        git_poll_ms, git_rss = git_fetch_cpu_ms(root, "file://" + fleet.repo, polls)

        # 2, per transport: the same no-op poll by an eddyd following the same repository
        # through `git daemon` (git://) and lighttpd + git http-backend (smart HTTP), each next
        # to `git fetch` from the same server.
        transports = []
        servers = start_git_servers(root, fleet.repo)
        try:
            for name, url in servers.urls:
                eddy_ms, eddyd_ms, worker_ms, rss_mib = device_noop_poll_cpu(root, name, url, fleet, polls)
                ref_ms, _ = git_fetch_cpu_ms(root, url, polls)
                transports.append((name, eddy_ms, eddyd_ms, worker_ms, ref_ms, rss_mib))
        finally:
            servers.stop()

        # 4: with a hub, plain HTTP and HTTPS: this build, and the build before if given.
        # Without a hub too (file://, 300 polls), so that both builds' memory is compared in the
        # same configuration (an eddyd that restarts its app by a command, no debug log). The
        # first device's eddyd is stopped meanwhile: an eddyd of the same build running beside
        # the one measured would share its executable's pages and halve its PSS and USS. Its
        # app (which these devices' health probes ask) is served by hand meanwhile.
        eddyd.terminate()
        eddyd.wait(timeout=20)
        eddyd = None
        stand_in = subprocess.Popen(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                                     os.path.join(dev, "app", "current", "www")], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        while http_version(port) != "1.0.0":
            time.sleep(0.01)
        hub_rows = []
        builds = [("this build", BUILD)] + ([("before", BEFORE)] if BEFORE else [])
        for tls in (None, False, True):
            hub = Hub(root, fleet, tls) if tls is not None else None
            try:
                for label, build in builds:
                    eddy_ms, eddyd_ms, worker_ms, rss_mib, memory = device_noop_poll_cpu(
                        root, "hub", "file://" + fleet.repo, fleet, polls, build=build,
                        hub=(hub.url, hub.token, hub.ca_file) if hub else None, with_memory=True)
                    scheme = hub.url.split(":")[0] if hub else None
                    hub_rows.append((scheme, label, eddy_ms, eddyd_ms, worker_ms, rss_mib, memory))
            finally:
                if hub:
                    hub.stop()

        stand_in.terminate()
        stand_in.wait()
        # The first device again, serving v1.
        eddyd = start_device(cfg, dev, env, "a")
        for _ in range(1000):
            if http_version(port) == "1.0.0":
                break
            time.sleep(0.01)
        assert http_version(port) == "1.0.0", "v1 not serving after eddyd's restart"

        # 3: a failing verdict to the previous version answering again. (The analysis tolerates
        # two failed checks, so that v1 passes on a loaded machine whose Python starts slowly;
        # the time measured runs from the verdict, whatever it took to reach it.)
        fleet.publish("3.0.0", False)
        check = subprocess.Popen([EDDY, "check", "--json"], env=env, stdout=subprocess.PIPE, text=True)
        seen_v3 = False
        back_at = None
        deadline = time.time() + 60
        while time.time() < deadline:
            v = http_version(port)
            now = time.time()
            if v == "3.0.0":
                seen_v3 = True
            elif seen_v3 and v == "1.0.0":
                back_at = now
                break
            time.sleep(0.002)
        out = check.communicate()[0]
        assert json.loads(out)["outcome"] == "rolled-back", out
        db = sqlite3.connect(os.path.join(dev, "data", "eddy.db"))
        verdict_us = db.execute("SELECT at FROM transitions WHERE to_state='rolling-back' ORDER BY id DESC LIMIT 1").fetchone()[0]
        rollback_ms = (back_at - verdict_us / 1e6) * 1000

        # Reference for 3: the same app started by hand, from exec to its first answer.
        ref_port = free_port()
        t0 = time.time()
        p = subprocess.Popen(["python3", "-m", "http.server", str(ref_port), "--bind", "127.0.0.1", "--directory",
                              os.path.join(dev, "app", "current", "www")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        while http_version(ref_port) is None:
            time.sleep(0.002)
        cold_ms = (time.time() - t0) * 1000
        p.terminate()
        p.wait()

        print("| measure | eddyd | reference | ratio | goal |")
        print("|---|---|---|---|---|")
        print("| idle resident memory (VmRSS) | %.1f MiB | %.1f MiB (peak RSS of `git fetch`, no-op) | %.2f | < 8 MiB |"
              % (rss / 1024, git_rss / 1024, rss / git_rss))
        print("| of which private (USS) / anonymous (heap, stacks); PSS | %.1f MiB / %.1f MiB; %.1f MiB | | | |"
              % ((rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)) / 1024, rollup.get("Anonymous", 0) / 1024,
                 rollup.get("Pss", 0) / 1024))
        print("| update worker's peak RSS (gone after its poll) | %.1f MiB | | | |" % worker_peak_mib)
        print("| CPU time of a no-op poll that starts the worker (eddyd's debug log) | %.1f ms | | | |" % worker_noop_ms)
        print("| CPU time of a poll that finds nothing new | %.2f ms | %.2f ms (`git fetch`, no-op) | %.2f | < 5 ms |"
              % (eddy_poll_ms, git_poll_ms, eddy_poll_ms / git_poll_ms))
        print("| of which eddyd / the update worker; starting the worker alone | %.2f ms / %.2f ms; %.2f ms | | | |"
              % (own_poll_ms, worker_poll_ms, worker_start_ms))
        for name, eddy_ms, eddyd_ms, worker_ms, ref_ms, rss_mib in transports:
            print("| CPU time of a no-op poll over %s (eddyd / workers) | %.2f ms (%.2f / %.2f) | %.2f ms (`git fetch`, no-op) | %.2f | < 5 ms |"
                  % (name, eddy_ms, eddyd_ms, worker_ms, ref_ms, eddy_ms / ref_ms))
            print("| VmRSS of that eddyd after its polls | %.1f MiB | | | < 8 MiB |" % rss_mib)
        for scheme, label, eddy_ms, eddyd_ms, worker_ms, rss_mib, (total, _) in hub_rows:
            where = "with an %s hub" % scheme if scheme else "without a hub"
            print("| CPU time of a no-op poll %s (file:// source), %s (eddyd / workers) | %.2f ms (%.2f / %.2f) | | | < 5 ms |"
                  % (where, label, eddy_ms, eddyd_ms, worker_ms))
            print("| VmRSS of that eddyd after its polls; PSS; USS | %.2f MiB; %.2f; %.2f MiB | | | < 8 MiB |"
                  % (rss_mib, total["Pss"] / 1024, total["Uss"] / 1024))
        print("| failing verdict → previous version answering | %.0f ms | %.0f ms (cold start of the app by hand) | %.2f | < 1 s |"
              % (rollback_ms, cold_ms, rollback_ms / cold_ms))
        print()
        print("Largest mappings of each eddyd after its polls (KiB: VmRSS/PSS/USS):")
        for scheme, label, _, _, _, _, (_, per) in hub_rows:
            print("- %s, %s: %s" % ("%s hub" % scheme if scheme else "no hub", label, describe_mappings(per)))
    finally:
        if eddyd:
            eddyd.terminate()
            try:
                eddyd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(eddyd.pid, 9)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
