# shellcheck shell=bash
# Apply and verify `fix deps` (runbook 3): the runbook's install lines in the venv, then the
# packages checked again, restart only if the 0.1 preflight passes, verify. Refuses if the
# installed packages changed since the plan (NEXY_EXPECT: the fingerprint of `pip freeze`).
cd "$NEXY_APP_DIR" || exit 2
before=$(mktemp)
after=$(mktemp)
pins=$(nexy_patterns_file "$NEXY_PINS")
venv/bin/pip freeze > "$before" 2>/dev/null
sha=$(sha256sum < "$before" | cut -c1-16)
fact before_sha "$sha"
if [ "$sha" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    rm -f "$before" "$after" "$pins"
    exit 3
fi
echo "+ . venv/bin/activate && pip install --upgrade -r server/requirements.txt"
venv/bin/pip install --upgrade -r server/requirements.txt 2>&1 | tail -n 3
mapfile -t wanted < "$pins"
echo "+ pip install --upgrade ${wanted[*]}"
venv/bin/pip install --upgrade "${wanted[@]}" 2>&1 | tail -n 3
venv/bin/pip freeze > "$after" 2>/dev/null
echo "--- diff"
diff "$before" "$after" | grep '^[<>]' | sed 's/^< /- /; s/^> /+ /' | head -n 20 || true
changed=$(diff "$before" "$after" | grep -c '^>' || true)
unmet=$(nexy_deps_mismatches "$after" "$pins")
left=$(printf '%s' "$unmet" | grep -c . || true)
fact deps_left "$left"
fact after "$left unsatisfied ($changed packages changed)"
rm -f "$before" "$after" "$pins"
if [ "$left" != 0 ]; then
    printf 'still not satisfied:\n%s\n' "$unmet" | head -n 11
    fact outcome failed
    fact failed_command "pip install left $left requirement(s) unsatisfied"
    exit 6
fi
nexy_restart_and_verify
