# shellcheck shell=bash
# Runbook 4 check, and the plan of `fix version`: VERSION and the version/build of the updates
# manifest as deployed on this VM. Facts: runtime_version, manifest_version, manifest_build,
# version_fingerprint (of both files).
cd "$NEXY_APP_DIR" || exit 2
manifest=server/updates/manifests/manifest.json
if [ -f VERSION ]; then fact runtime_version "$(head -c 64 VERSION | tr -d '\n')"; else fact runtime_version missing; fi
if [ -f "$manifest" ]; then
    read -r mversion mbuild < <(python3 -c 'import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
print(str(data.get("version") or "none")[:32], str(data.get("build") or "none")[:32])' "$manifest" 2>/dev/null || echo "unreadable unreadable")
    fact manifest_version "$mversion"
    fact manifest_build "$mbuild"
else
    fact manifest_version missing
    fact manifest_build missing
fi
fact version_fingerprint "$(cat VERSION "$manifest" 2>/dev/null | sha256sum | cut -c1-16)"
