# shellcheck shell=bash
# Plan for runbook 6.1: capture config.env's owner, group and mode, and whether the service user can read it.
cfg="$NEXY_APP_DIR/config.env"
if [ ! -f "$cfg" ]; then
    fact exists no
    exit 0
fi
fact exists yes
fact stat "$(stat -c '%U:%G:%a' "$cfg")"
if sudo -n -u "$NEXY_SERVICE_USER" test -r "$cfg" 2>/dev/null; then fact readable yes; else fact readable no; fi
fact active "$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)"
