#!/bin/bash
# Set the runtime version of the Nexy server on this VM: VERSION and the updates manifest
# (version, build and the artifact's version/build). The health endpoints read both on
# every request. (Sandbox image of the on-VM part of the real scripts/update_server_version.sh.)
# Usage:
#   bash scripts/update_server_version.sh X.Y.Z.Build        e.g. 2.4.0.240
#   bash scripts/update_server_version.sh X.Y.Z Build        e.g. 2.4.0 240
set -euo pipefail

cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "Usage: $0 X.Y.Z.Build | X.Y.Z Build" >&2
  exit 1
fi

if [ $# -eq 2 ]; then
  VERSION_ARG="$1"
  BUILD_ARG="$2"
else
  case "$1" in
    *.*.*.*)
      VERSION_ARG="${1%.*}"
      BUILD_ARG="${1##*.}"
      ;;
    *)
      echo "❌ Expected X.Y.Z.Build, got: $1" >&2
      exit 1
      ;;
  esac
fi

if ! printf '%s\n' "$VERSION_ARG" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' \
  || ! printf '%s\n' "$BUILD_ARG" | grep -Eq '^[0-9]+$'; then
  echo "❌ Invalid version/build: $VERSION_ARG / $BUILD_ARG (expected X.Y.Z and a number)" >&2
  exit 1
fi

MANIFEST="server/updates/manifests/manifest.json"
mkdir -p "$(dirname "$MANIFEST")"
printf '%s.%s\n' "$VERSION_ARG" "$BUILD_ARG" > VERSION

python3 - "$MANIFEST" "$VERSION_ARG" "$BUILD_ARG" <<'PYEOF'
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

path, version, build = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
# the artifact (url, size, sha256) is the publish script's: only a missing one gets the release's url
artifact = data.setdefault("artifact", {"type": "pkg", "arch": "universal2", "min_os": "11.0"})
artifact.setdefault("url", "https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.pkg")
artifact["version"] = version
artifact["build"] = build
data["version"] = version
data["build"] = build
data["release_date"] = datetime.now(timezone.utc).isoformat()
path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
print("manifest version/build:", data["version"], data["build"])
PYEOF

echo "VERSION: $(cat VERSION)"
echo "✅ Version update completed"
