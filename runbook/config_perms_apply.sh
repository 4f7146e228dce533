# shellcheck shell=bash
# Apply and verify runbook 6.1: chown root:<service user>, chmod 640, then restart only if the
# 0.1 preflight passes, then verify. Refuses if config.env changed since the plan (NEXY_EXPECT).
cfg="$NEXY_APP_DIR/config.env"
before=$(stat -c '%U:%G:%a' "$cfg" 2>/dev/null || echo missing)
fact before "$before"
if [ "$before" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
echo "+ sudo chown root:$NEXY_SERVICE_USER $cfg"
sudo chown "root:$NEXY_SERVICE_USER" "$cfg"
echo "+ sudo chmod 640 $cfg"
sudo chmod 640 "$cfg"
fact after "$(stat -c '%U:%G:%a' "$cfg")"
nexy_restart_and_verify
