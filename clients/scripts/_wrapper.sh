#!/bin/bash
# nexy-ops run-command wrapper. The body runs in a subshell under `set -eu`; whatever happens,
# the facts it gathered and its exit code are printed LAST, because Azure Run Command returns
# only the last 4,096 bytes of output and reports "succeeded" even when the script fails.
# Parameters arrive as validated, shell-quoted assignments (never raw user text).
set -u
# @@PARAMETERS@@
# Every temporary file of the run lives in one private directory (TMPDIR for the body: `mktemp`
# creates there), removed however the run ends: a failed or killed apply leaves nothing behind.
__nexy_tmp=$(mktemp -d 2>/dev/null || { mkdir "/tmp/nexy-run.$$" && echo "/tmp/nexy-run.$$"; })
trap 'rm -rf "$__nexy_tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
__nexy_facts="$__nexy_tmp/facts"
: > "$__nexy_facts"

# shellcheck disable=SC2329 # called by the body
# fact NAME VALUE: record one small fact for the summary line (one line, at most 300 bytes).
fact() {
    printf '%s=%s\n' "$1" "$(printf '%s' "${2-}" | tr '\n\r\t' '   ' | cut -c1-300)" >> "$__nexy_facts"
}

# @@LIBRARY@@

(
TMPDIR=$__nexy_tmp
export TMPDIR
set -eEu
# A failing command ends the body (set -e); record which one, so the report can name it.
trap 'fact failed_command "$BASH_COMMAND (exit $?)"' ERR
# @@BODY@@
)
__nexy_rc=$?
printf '\n'
head -c 3072 "$__nexy_facts" | sed 's/^/@@nexy-fact /'
printf '@@nexy-result rc=%s\n' "$__nexy_rc"
rm -rf "$__nexy_tmp"
exit 0
