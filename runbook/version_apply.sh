# shellcheck shell=bash
# Apply and verify `fix version X.Y.Z.Build` (runbook 4): the server's own
# scripts/update_server_version.sh with the validated version (NEXY_TARGET_VERSION), then both
# health endpoints on the VM must report it (they read VERSION and the manifest on every request).
# Refuses if VERSION or the manifest changed since the plan (NEXY_EXPECT).
cd "$NEXY_APP_DIR" || exit 2
manifest=server/updates/manifests/manifest.json
sha=$(cat VERSION "$manifest" 2>/dev/null | sha256sum | cut -c1-16)
fact before_sha "$sha"
if [ "$sha" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
echo "+ bash scripts/update_server_version.sh $NEXY_TARGET_VERSION"
bash scripts/update_server_version.sh "$NEXY_TARGET_VERSION" 2>&1 | tail -n 5
fact after "VERSION $(head -c 64 VERSION | tr -d '\n')"
want_version="${NEXY_TARGET_VERSION%.*}"
want_build="${NEXY_TARGET_VERSION##*.}"
ok=0
n=0
for url in $(printf '%s' "$NEXY_VERIFY_URLS" | tr ',' ' '); do
    n=$((n + 1))
    body=$(curl -fsS --max-time 5 "$url" 2>/dev/null || true)
    reported=$(printf '%s' "$body" | python3 -c 'import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    data = {}
print(data.get("latest_version") or data.get("version") or "none", data.get("latest_build") or data.get("build") or "none")' 2>/dev/null || echo "none none")
    if [ "$reported" = "$want_version $want_build" ]; then
        fact "verify_health_$n" "ok $url"
    else
        fact "verify_health_$n" "fail $url"
        fact "verify_reported_$n" "$reported"
        ok=1
    fi
done
if [ "$ok" = 0 ]; then
    fact outcome verified
else
    fact outcome verify_failed
    exit 5
fi
