# shellcheck shell=bash
# Plan for runbook 5: the service state and the 0.1 preflight a restart needs.
fact active "$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)"
nexy_preflight || true
