# shellcheck shell=bash
# Runbook 3 check, and the plan of `fix deps`: the venv's python, and every package that does not
# satisfy server/requirements.txt or the section 3 pins (NEXY_PINS: base64, one requirement a line).
# Facts: python, deps_fingerprint (of `pip freeze`), deps_count, deps_1..deps_12 (`name installed wanted`).
cd "$NEXY_APP_DIR" || exit 2
fact python "$("$NEXY_APP_DIR/venv/bin/python" -V 2>&1 | head -n 1)"
freeze=$(mktemp)
pins=$(nexy_patterns_file "$NEXY_PINS")
"$NEXY_APP_DIR/venv/bin/pip" freeze > "$freeze" 2>/dev/null || true
fact deps_fingerprint "$(sha256sum < "$freeze" | cut -c1-16)"
fact deps_installed "$(wc -l < "$freeze" | tr -d ' ')"
n=0
while IFS='|' read -r name have want; do
    n=$((n + 1))
    [ "$n" -le 12 ] && fact "deps_$n" "$name $have $want"
done < <(nexy_deps_mismatches "$freeze" "$pins")
fact deps_count "$n"
rm -f "$freeze" "$pins"
