"""pip stand-in of the simulated Nexy VM (stdlib only).

The venv's installed distributions are the lines ``name==version`` of ``<venv>/sandbox-packages.txt``;
what can be installed is ``<VM root>/var/lib/sandbox/pypi-index.json`` ({name: [versions]}).
Supports: freeze, list, show, install [-U] [-r FILE] [SPEC ...], uninstall [-y], --version.
Like pip, `install` resolves every requirement first and changes nothing when one cannot be met.
"""
import json
import os
import re
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("NEXY_VM_ROOT") or VENV.parents[3])
PACKAGES = VENV / "sandbox-packages.txt"
INDEX = ROOT / "var/lib/sandbox/pypi-index.json"
PYVER = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = VENV / "lib" / f"python{PYVER}" / "site-packages"


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def vtuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text))


def satisfies(version, spec):
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.match(r"(===|==|!=|>=|<=|~=|>|<)\s*(.+)", clause)
        if not match:
            continue
        op, want = match.groups()
        have, need = vtuple(version), vtuple(want)
        if op in ("==", "===") and want.endswith(".*"):
            ok = have[: len(need)] == need
        else:
            ok = {"==": have == need, "===": version == want, "!=": have != need, ">=": have >= need,
                  "<=": have <= need, ">": have > need, "<": have < need,
                  "~=": have >= need and have[: len(need) - 1] == need[: len(need) - 1]}[op]
        if not ok:
            return False
    return True


def load_installed():
    installed = {}
    if PACKAGES.exists():
        for line in PACKAGES.read_text(encoding="utf-8").splitlines():
            if "==" in line:
                name, version = line.strip().split("==", 1)
                installed[norm(name)] = (name, version)
    return installed


def save_installed(installed):
    lines = [f"{name}=={version}" for name, version in sorted(installed.values(), key=lambda p: p[0].lower())]
    tmp = PACKAGES.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, PACKAGES)


def parse_requirement(text):
    text = text.split("#", 1)[0].split(";", 1)[0].strip()
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(\[[^\]]*\])?\s*(.*)", text)
    if not match:
        return None
    return match.group(1), re.sub(r"\s+", "", match.group(3))


def read_requirements(path, seen=None):
    seen = seen or set()
    path = Path(path)
    if path in seen:
        return []
    seen.add(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        print(f"ERROR: Could not open requirements file: [Errno 2] No such file or directory: '{path}'",
              file=sys.stderr)
        raise SystemExit(1)
    reqs = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            reqs.extend(read_requirements(path.parent / line.split(None, 1)[1], seen))
            continue
        if line.startswith("-"):
            continue
        parsed = parse_requirement(line)
        if parsed:
            reqs.append((parsed[0], parsed[1], f"-r {path} (line {number})"))
    return reqs


def install(args):
    upgrade = quiet = False
    reqs = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-U", "--upgrade"):
            upgrade = True
        elif a in ("-q", "--quiet", "-qq"):
            quiet = True
        elif a in ("-r", "--requirement"):
            reqs.extend(read_requirements(args[i + 1]))
            i += 1
        elif a.startswith("--requirement="):
            reqs.extend(read_requirements(a.split("=", 1)[1]))
        elif a.startswith("-"):
            pass  # --no-cache-dir, --disable-pip-version-check, --upgrade-strategy ...
        else:
            parsed = parse_requirement(a)
            if parsed:
                reqs.append((parsed[0], parsed[1], None))
        i += 1
    if not reqs:
        print("ERROR: You must give at least one requirement to install (see \"pip help install\")",
              file=sys.stderr)
        return 1
    index = json.loads(INDEX.read_text(encoding="utf-8")) if INDEX.exists() else {}
    index = {norm(k): v for k, v in index.items()}
    merged = {}
    for name, spec, source in reqs:
        key = norm(name)
        entry = merged.setdefault(key, {"name": name, "specs": [], "source": source})
        if spec:
            entry["specs"].append(spec)
    installed = load_installed()
    plan = []
    out = []
    for key, entry in merged.items():
        spec = ",".join(entry["specs"])
        shown = entry["name"] + spec
        have = installed.get(key)
        if have and satisfies(have[1], spec) and not upgrade:
            out.append(f"Requirement already satisfied: {shown} in {SITE} ({have[1]})")
            continue
        candidates = sorted((v for v in index.get(key, []) if satisfies(v, spec)), key=vtuple)
        if not candidates:
            versions = ", ".join(sorted(index.get(key, []), key=vtuple)) or "none"
            print(f"ERROR: Could not find a version that satisfies the requirement {shown} (from versions: {versions})",
                  file=sys.stderr)
            print(f"ERROR: No matching distribution found for {shown}", file=sys.stderr)
            return 1
        best = candidates[-1]
        if have and vtuple(have[1]) == vtuple(best):
            out.append(f"Requirement already satisfied: {shown} in {SITE} ({have[1]})")
            continue
        source = f" (from {entry['source']})" if entry["source"] else ""
        out.append(f"Collecting {shown}{source}")
        out.append(f"  Downloading {entry['name'].replace('-', '_')}-{best}-py3-none-any.whl")
        plan.append((key, entry["name"] if not have else have[0], best, have))
    if plan:
        out.append("Installing collected packages: " + ", ".join(p[1] for p in plan))
        for key, name, best, have in plan:
            if have:
                out.append(f"  Attempting uninstall: {have[0]}")
                out.append(f"    Found existing installation: {have[0]} {have[1]}")
                out.append(f"    Uninstalling {have[0]}-{have[1]}:")
                out.append(f"      Successfully uninstalled {have[0]}-{have[1]}")
            installed[key] = (name, best)
        save_installed(installed)
        out.append("Successfully installed " + " ".join(f"{p[1]}-{p[2]}" for p in plan))
    if not quiet:
        print("\n".join(out))
    return 0


def main(argv):
    args = [a for a in argv if a not in ("--disable-pip-version-check", "--no-input", "--no-color")]
    if not args or args[0] in ("-h", "--help", "help"):
        print("Usage: pip <command> [options]  (sandbox stand-in: freeze, list, show, install, uninstall)")
        return 0
    if args[0] in ("-V", "--version"):
        print(f"pip 25.2 from {SITE}/pip (python {PYVER})")
        return 0
    command, rest = args[0], args[1:]
    installed = load_installed()
    if command == "freeze":
        for name, version in sorted(installed.values(), key=lambda p: p[0].lower()):
            print(f"{name}=={version}")
        return 0
    if command == "list":
        rows = sorted(installed.values(), key=lambda p: p[0].lower())
        width = max([len("Package")] + [len(n) for n, _ in rows])
        print(f"{'Package'.ljust(width)} Version")
        print(f"{'-' * width} -------")
        for name, version in rows:
            print(f"{name.ljust(width)} {version}")
        return 0
    if command == "show":
        missing = [n for n in rest if not n.startswith("-") and norm(n) not in installed]
        found = [installed[norm(n)] for n in rest if not n.startswith("-") and norm(n) in installed]
        for number, (name, version) in enumerate(found):
            if number:
                print("---")
            print(f"Name: {name}\nVersion: {version}\nSummary: \nLocation: {SITE}\nRequires: \nRequired-by: ")
        if missing:
            print(f"WARNING: Package(s) not found: {', '.join(missing)}", file=sys.stderr)
            return 1
        return 0
    if command == "install":
        return install(rest)
    if command == "uninstall":
        names = [n for n in rest if not n.startswith("-")]
        for n in names:
            have = installed.pop(norm(n), None)
            if have is None:
                print(f"WARNING: Skipping {n} as it is not installed.", file=sys.stderr)
            else:
                print(f"Found existing installation: {have[0]} {have[1]}\nUninstalling {have[0]}-{have[1]}:\n"
                      f"  Successfully uninstalled {have[0]}-{have[1]}")
        save_installed(installed)
        return 0
    print(f'ERROR: unknown command "{command}"', file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
