# shellcheck shell=bash
# Apply and verify runbook 6.2: point ExecStart at server/main.py, daemon-reload, restart only if
# the 0.1 preflight passes, verify. Refuses if the unit file changed since the plan (NEXY_EXPECT).
unit=$(systemctl show -p FragmentPath --value "$NEXY_SERVICE" 2>/dev/null || true)
if [ -z "$unit" ] || [ ! -f "$unit" ]; then
    fact outcome stale
    exit 3
fi
sha=$(sha256sum "$unit" | cut -c1-16)
fact before_sha "$sha"
if [ "$sha" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
saved=$(mktemp)
cp "$unit" "$saved"
echo "+ sudo sed -i 's|^ExecStart=.*|ExecStart=$NEXY_APP_DIR/venv/bin/python3 server/main.py|' $unit"
sudo sed -i "s|^ExecStart=.*|ExecStart=$NEXY_APP_DIR/venv/bin/python3 server/main.py|" "$unit"
echo "--- diff"
diff -u "$saved" "$unit" | tail -n +3 || true
rm -f "$saved"
fact after "$(grep '^ExecStart=' "$unit" | tail -n 1)"
echo "+ sudo systemctl daemon-reload"
sudo systemctl daemon-reload
nexy_restart_and_verify
