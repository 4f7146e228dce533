# shellcheck shell=bash
# Plan for runbook 6.2: capture the unit file, its ExecStart line, and a fingerprint of it.
unit=$(systemctl show -p FragmentPath --value "$NEXY_SERVICE" 2>/dev/null || true)
if [ -z "$unit" ] || [ ! -f "$unit" ]; then
    fact unit missing
    exit 0
fi
fact unit "$unit"
fact unit_sha "$(sha256sum "$unit" | cut -c1-16)"
fact execstart "$(grep '^ExecStart=' "$unit" | tail -n 1)"
fact wanted "ExecStart=$NEXY_APP_DIR/venv/bin/python3 server/main.py"
fact active "$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)"
