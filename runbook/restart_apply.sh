# shellcheck shell=bash
# Apply and verify runbook 5: restart only if the 0.1 preflight passes, then verify.
# Refuses if the service state changed since the plan (NEXY_EXPECT).
active=$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)
fact before "$active"
if [ "$active" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
nexy_restart_and_verify
