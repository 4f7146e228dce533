# shellcheck shell=bash
# Every VM check in one run-command (the design's "all" row). This part: the service's state and
# the journal lines since its last start that match a declared signature (NEXY_SIGNATURES), the
# last few, cut short. The plan script of every fix follows it in the same run-command (batched by
# the bot), so the diagnosis already holds the state each plan needs. Output stays small: Azure
# returns only the last 4,096 bytes, and the facts come last.
fact active "$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)"
fact since "$(systemctl show -p ActiveEnterTimestamp --value "$NEXY_SERVICE" 2>/dev/null || true)"
signatures=$(nexy_patterns_file "$NEXY_SIGNATURES")
# Each signature with up to 90 characters on either side: a long line keeps the part that matters.
around=$(mktemp)
sed 's/.*/.{0,90}(&).{0,90}/' "$signatures" > "$around"
echo "--- journal since the last start (declared signatures, last 5)"
nexy_journal_since_start | grep -E -o -f "$around" | tail -n 5 || true
rm -f "$signatures" "$around"
echo "--- end of journal"
