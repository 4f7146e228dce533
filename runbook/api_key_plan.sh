# shellcheck shell=bash
# Plan of `fix api-key` (runbook 6, 6.3): the 0.1 guardrails, a fingerprint of config.env, and
# whether it already holds the new key (NEXY_GEMINI_KEY, a parameter never in the script text;
# compared here, never printed). The comparison is done by the shell itself (`read`, `[`: builtins,
# no new process): the key is never on a command line, where `ps`, auditd and endpoint agents see it.
cfg="$NEXY_APP_DIR/config.env"
nexy_preflight || true
if [ -f "$cfg" ]; then
    fact config_sha "$(sha256sum < "$cfg" | cut -c1-16)"
    if [ -n "${NEXY_GEMINI_KEY:-}" ]; then  # absent when a diagnosis batches this script
        matches=no
        while IFS= read -r line || [ -n "$line" ]; do
            if [ "$line" = "GEMINI_API_KEY=$NEXY_GEMINI_KEY" ]; then matches=yes; fi
        done < "$cfg"
        fact key_matches "$matches"
    fi
else
    fact config_sha missing
fi
fact active "$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)"
