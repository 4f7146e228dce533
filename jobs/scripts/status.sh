# shellcheck shell=bash
# Runbook 5: service state and the journal lines that matter: those matching the runbook's
# signatures since the service's last start (older failures are history, not the current state).
# Parameters: NEXY_SERVICE, NEXY_JOURNAL_LINES.
svc="$NEXY_SERVICE"
fact active "$(systemctl is-active "$svc" 2>/dev/null || true)"
fact since "$(systemctl show -p ActiveEnterTimestamp --value "$svc" 2>/dev/null || true)"
echo "--- systemctl status"
systemctl status "$svc" --no-pager -l 2>&1 | head -n 8 || true
signatures='PermissionError|can.t open file|TextProcessor|API_KEY_INVALID|API key expired|google\.genai|ModuleNotFoundError|ImportError|Main process exited|Failed with result'
echo "--- journal since the last start (runbook signatures, last $NEXY_JOURNAL_LINES)"
journalctl -u "$svc" -n 200 --no-pager 2>&1 \
    | awk '/systemd\[[0-9]+\]: (Started|Starting) /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' \
    | grep -E "$signatures" | tail -n "$NEXY_JOURNAL_LINES" || true
