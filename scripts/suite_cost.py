"""Where the test suite's CPU goes: per test file, with every child process counted, on a busy machine too.

Wall seconds of a shared machine stretch with its load; CPU seconds do not (much). This runs pytest with
the given arguments and records, per test, the CPU of the pytest process and of the child processes it
waited for (`getrusage`), under a child subreaper: servers started in the background (`prefect server
start --background`) and other orphans are reaped here, so the whole tree's CPU is in the total. Every
Python process started with this folder's hook on its `PYTHONPATH` is logged with the test that started
it (`PYTEST_CURRENT_TEST`), so the table also counts, per file, the `kerasflow` CLI processes, the Great
Expectations workers (of in-process flows and of subprocesses), infra-validation probes, Prefect and
MLflow servers and multiprocessing children (Dask workers). Processes whose environment replaces
`PYTHONPATH` are not logged (their CPU is still counted). A sampler reads every new process's CPU
seconds from /proc twice a second, however it ends (killed, `os._exit`), and the report sums them per
kind of process: where the tree's total goes (the last half second of each process is missed). Usage,
one pytest at a time:

    python scripts/suite_cost.py --out /tmp/cost -- -n 2 --dist loadfile --no-loadscope-reorder
    python scripts/suite_cost.py --out /tmp/cost -- tests/test_outages.py
    python scripts/suite_cost.py --report /tmp/cost      # the tables of a finished (or stopped) run
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PR_SET_CHILD_SUBREAPER = 36

SITECUSTOMIZE = '''\
import os, time
_log = os.environ.get("SUITE_COST_PROCS")
if _log:
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\\0", b" ").decode(errors="replace")[:300].replace("\\n", " ")
        test = os.environ.get("PYTEST_CURRENT_TEST", "")
        with open(_log, "a") as f:
            f.write(f"{time.time():.2f}\\t{os.getpid()}\\t{os.getppid()}\\t{test}\\t{cmd}\\n")
    except Exception:
        pass
'''

PLUGIN = '''\
import json, os, resource, time
import pytest

def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.time(); a0, b0 = _cpu()
    yield
    a1, b1 = _cpu()
    with open(os.environ["SUITE_COST_TESTS"], "a") as f:
        f.write(json.dumps({"id": item.nodeid, "wall": round(time.time() - t0, 2), "self": round(a1 - a0, 2),
                            "child": round(b1 - b0, 2), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                            "start": round(t0, 1)}) + "\\n")
'''

KINDS = [("cli", re.compile(r"kerasflow\.runtime\.cli (\w+)|bin/kerasflow (\w+)")),
         ("gx", re.compile(r"expectations\.worker import serve")),
         ("infra", re.compile(r"import mlflow\.pyfunc")),
         ("prefect_srv", re.compile(r"uvicorn .*prefect\.server|-m prefect server start (?!--background)")),
         ("mlflow_srv", re.compile(r"-m mlflow server")),
         ("mp_spawn", re.compile(r"multiprocessing\.spawn")),
         ("flow_run", re.compile(r"prefect\.engine|flow-run execute"))]


def run(out: Path, pytest_args: list[str]) -> int:
    """Runs pytest as a child of this subreaper with the hook and plugin; returns pytest's exit code."""
    hook = out / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (hook / "suite_cost_plugin.py").write_text(PLUGIN)
    for name in ("tests.jsonl", "procs.tsv"):
        (out / name).unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{hook}", "SUITE_COST_TESTS": str(out / "tests.jsonl"),
           "SUITE_COST_PROCS": str(out / "procs.tsv")}
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    started, load = time.time(), os.getloadavg()
    sampler = ProcessSampler(out / "cpu.json")
    pytest = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "suite_cost_plugin", "-p", "no:cacheprovider",
                               *pytest_args], cwd=ROOT, env=env)
    while True:  # reaps orphans as they end: a zombie left for later breaks tests that inspect processes
        pid, status = os.waitpid(-1, 0)
        if pid == pytest.pid:
            code = pytest.returncode = os.waitstatus_to_exitcode(status)
            break
    wall = time.time() - started
    _reap_orphans(timeout=120)
    sampler.stop()
    tree = os.times()
    (out / "tree.json").write_text(json.dumps({
        "user": tree.children_user, "system": tree.children_system, "wall": wall, "exit": code,
        "load_before": load, "load_after": os.getloadavg(), "args": pytest_args}))
    return code


class ProcessSampler:
    """Samples every process's CPU seconds from /proc twice a second; writes the last seen per process at `stop`.

    Counts processes however they end (killed, `os._exit`), which an exit hook would miss; only the last half
    second of each is lost.
    """

    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self.path, self.interval, self.seen = path, interval, {}
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.before = set(self._pids())  # what ran before pytest: not the suite's
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @staticmethod
    def _pids() -> list[str]:
        return [name for name in os.listdir("/proc") if name.isdigit()]

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            for pid in self._pids():
                if pid in self.before:
                    continue
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    cpu = (int(fields[11]) + int(fields[12])) / self.ticks  # utime, stime
                    if pid not in self.seen:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            command = f.read().replace(b"\0", b" ").decode(errors="replace")[:300]
                        self.seen[pid] = [command, cpu]
                    self.seen[pid][1] = cpu
                except (OSError, IndexError, ValueError):
                    continue

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.path.write_text(json.dumps(self.seen))


def _reap_orphans(timeout: float) -> None:
    """Waits for the orphans this subreaper inherited (background servers stopped at the session's end)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.5)


def report(out: Path) -> None:
    """Prints the per-file CPU table, the process counts and the tree's totals of a run in `out`."""
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for line in (out / "tests.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "wall" not in row:  # not a test's row
            continue
        entry = files[row["id"].split("::")[0]]
        entry[0] += 1
        entry[1] += row["wall"]
        entry[2] += row["self"]
        entry[3] += row["child"]
    counts = _process_counts(out / "procs.tsv") if (out / "procs.tsv").exists() else {}
    names = [k for k, _ in KINDS]
    print(f"{'file':38} {'tests':>5} {'wall s':>7} {'cpu s':>7} {'in-proc':>7} {'children':>8}  "
          + " ".join(f"{n:>11}" for n in names))
    total = [0, 0.0, 0.0, 0.0]
    for name, (n, wall, own, child) in sorted(files.items(), key=lambda kv: -(kv[1][2] + kv[1][3])):
        total = [total[0] + n, total[1] + wall, total[2] + own, total[3] + child]
        counted = counts.get(name, collections.Counter())
        print(f"{name.removeprefix('tests/'):38} {n:5d} {wall:7.0f} {own + child:7.1f} {own:7.1f} {child:8.1f}  "
              + " ".join(f"{counted[k]:11d}" for k in names))
    print(f"{'all tests':38} {total[0]:5d} {total[1]:7.0f} {total[2] + total[3]:7.1f} {total[2]:7.1f} {total[3]:8.1f}")
    if (out / "tree.json").exists():
        tree = json.loads((out / "tree.json").read_text())
        print(f"whole process tree: {tree['user'] + tree['system']:.0f} CPU s in {tree['wall']:.0f} s wall "
              f"(pytest exit {tree['exit']}; load {tree['load_before'][0]:.1f} before, {tree['load_after'][0]:.1f} "
              "after); what the tests do not account for: worker start-up, collection, session fixtures, servers")
    if (out / "cpu.json").exists():
        _cpu_by_kind(out / "cpu.json")


def _kind(command: str) -> str:
    """The `KINDS` name of a logged command line, else `pytest` or `other`."""
    for kind, pattern in KINDS:
        if pattern.search(command):
            return kind
    if "-m pytest" in command or "exec(eval(sys.stdin" in command:
        return "pytest"
    program = command.split(" ", 1)[0].rsplit("/", 1)[-1]
    if not program.startswith("python"):
        return program or "other"  # postgres, git, pip ...
    words = command.split()
    return "py " + " ".join(words[1:3])[:40]  # e.g. `py -m prefect`, `py -c import sys,`


def _cpu_by_kind(path: Path) -> None:
    """Prints the CPU seconds of the sampled processes (`ProcessSampler`), summed per kind of process."""
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for command, cpu in json.loads(path.read_text()).values():
        kind = "guard" if "runtime/guard.py" in command else _kind(command)
        totals[kind][0] += 1
        totals[kind][1] += cpu
    print("CPU of the suite's processes by kind (sampled from /proc twice a second):")
    for kind, (n, cpu) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:12} {n:5d} processes {cpu:8.1f} CPU s")


def _process_counts(path: Path) -> dict[str, collections.Counter]:
    """Per test file, how many processes of each kind (`KINDS`) its tests started."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 5 or "runtime/guard.py" in parts[4]:  # a guard runs a server: the server is counted
            continue
        kind = _kind(parts[4])
        if kind in dict(KINDS):
            counts[parts[3].split("::")[0] or "(session)"][kind] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments; runs pytest and reports, or reports an earlier run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the logs of a new run")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier run's folder")
    parser.add_argument("pytest_args", nargs="*", help="pytest's arguments, after --")
    args = parser.parse_args(argv)
    if args.report:
        report(args.report)
        return 0
    if not args.out:
        parser.error("give --out FOLDER (a new run) or --report FOLDER")
    code = run(args.out, args.pytest_args)
    report(args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
