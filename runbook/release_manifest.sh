# shellcheck shell=bash
# Runbook 7-9: manifest.json as deployed on this VM, for `/nexy release` to compare with the release.
# Prints the file after a marker line, on one line: indentation and line breaks are dropped (neither
# can be inside a JSON string), so a real manifest (~15 fields) takes about 500 bytes, well inside the
# 4,096 that Run Command returns. Facts: manifest (present | missing | unreadable | too-large),
# manifest_bytes, manifest_modified, runtime_version (the VERSION file).
manifest="$NEXY_APP_DIR/server/updates/manifests/manifest.json"
max_bytes=3000
fact manifest_path "$manifest"
if [ -f "$NEXY_APP_DIR/VERSION" ]; then
    fact runtime_version "$(head -c 64 "$NEXY_APP_DIR/VERSION")"
fi
if [ ! -f "$manifest" ]; then
    fact manifest missing
    exit 0
fi
if [ ! -r "$manifest" ]; then
    fact manifest unreadable
    exit 0
fi
fact manifest_modified "$(date -u -r "$manifest" '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null || echo unknown)"
compact=$(sed 's/^[[:space:]]*//' "$manifest" | tr -d '\r\n')
bytes=$(printf '%s' "$compact" | wc -c)
fact manifest_bytes "$bytes"
if [ "$bytes" -gt "$max_bytes" ]; then
    fact manifest too-large
    exit 0
fi
printf '%s\n%s\n' '@@manifest.json' "$compact"
fact manifest present
