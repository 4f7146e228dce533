"""The registry is the same whatever module of ours a process imports first: decorators only tag, and
the composition root builds the tables from the modules it discovers, never from what happened to be
imported (before, importing `runbook.diagnose` first built a registry without `diagnose`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "clients", "runbook", "commands", "jobs", "handlers", "nexy")

DRIVER = r'''
import importlib, json, os, sys

OURS = set(sys.argv[1].split(","))


def ours(name):
    return name.split(".")[0] in OURS


def fingerprint(first):
    if first:
        importlib.import_module(first)
    from nexy.registry import build_registry

    r = build_registry()
    return {
        "commands": [[c.name, c.usage, c.role.value, c.route.value, c.summary, c.section, c.scope.value,
                      c.reach.value] for c in r.commands.values()],
        "fixes": list(r.fixes),
        "symptoms": [[s.section, s.title, s.pattern, s.fix, s.rank] for s in r.symptoms],
        "probes": sorted(r.probes),
        "references": sorted(r.references),
        "help": r.help_lines(),
    }


def libraries():
    """The third-party modules our modules import, in the order they were imported."""
    for name in sys.argv[2:]:
        importlib.import_module(name)
    fingerprint("")
    return [name for name in sys.modules if not ours(name)]


def run(work, *args):
    """Fork a child that runs `work`; its JSON answer (or error) comes back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            out = json.dumps(work(*args))
        except BaseException as exc:
            out = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        with os.fdopen(write, "w") as pipe:
            pipe.write(out)
        os._exit(0)
    os.close(write)
    return pid, os.fdopen(read)


# The parent imports only third-party libraries (those a child importing everything of ours loaded), so
# each child pays for our modules alone.
pid, pipe = run(libraries)
loaded = json.loads(pipe.read())
os.waitpid(pid, 0)
for name in loaded:
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not [m for m in sys.modules if ours(m)], "the parent imported a module of ours"

results, running = {}, []
for first in ["", *sys.argv[2:]]:
    running.append((first, *run(fingerprint, first)))
    if len(running) >= 2:
        name, pid, pipe = running.pop(0)
        results[name] = json.loads(pipe.read())
        os.waitpid(pid, 0)
for name, pid, pipe in running:
    results[name] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(results))
'''


def _our_modules() -> list[str]:
    """Every module of our packages, by its file (found without importing any of them)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_any_module_first_builds_the_same_registry():
    """Each module of ours imported first, in a process of its own, then the registry built: all equal the
    registry built with nothing imported first, which holds every command (diagnose too)."""
    modules = _our_modules()
    assert len(modules) > 50 and "runbook.diagnose" in modules
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, ",".join(PACKAGES), *modules],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    reference = results.pop("")
    assert "error" not in reference, reference
    assert {"diagnose", "status", "help", "runbook", "fix", "incident close"} <= {c[0] for c in reference["commands"]}
    assert set(results) == set(modules)
    differing = {first: found for first, found in results.items() if found != reference}
    assert not differing, {first: found.get("error") or sorted(
        key for key in reference if found.get(key) != reference[key]) for first, found in differing.items()}
