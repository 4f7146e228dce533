# shellcheck shell=bash
# Apply and verify `fix api-key` (runbook 6, 6.3). Refuses if config.env changed since the plan
# (NEXY_EXPECT). Then, before anything changes, a minimal Gemini call with the new key from this
# VM (NEXY_GEMINI_URL; the key in a header read from a private file, never on a command line);
# a refused key stops here. Then GEMINI_API_KEY is replaced in place (owner and mode kept),
# restart only if the 0.1 preflight passes, verify: the journal since the restart must be free of
# API_KEY_INVALID and TextProcessor errors. The key (NEXY_GEMINI_KEY) is never printed.
cfg="$NEXY_APP_DIR/config.env"
sha=$(sha256sum < "$cfg" | cut -c1-16)
fact before_sha "$sha"
if [ "$sha" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
umask 077
header=$(mktemp)
printf 'x-goog-api-key: %s\n' "$NEXY_GEMINI_KEY" > "$header"
echo "+ curl POST $NEXY_GEMINI_URL (smoke test of the new key, before any change)"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 15 -H @"$header" -H 'Content-Type: application/json' \
    -d '{"contents":[{"parts":[{"text":"ping"}]}],"generationConfig":{"maxOutputTokens":1}}' \
    "$NEXY_GEMINI_URL" 2>/dev/null || echo 000)
rm -f "$header"
fact smoke "$code"
if [ "$code" != 200 ]; then
    fact outcome smoke_failed
    exit 7
fi
echo "+ GEMINI_API_KEY replaced in $cfg (in place: owner and mode kept)"
updated=$(mktemp)
awk 'BEGIN { done = 0 }
     /^GEMINI_API_KEY=/ { if (!done) print "GEMINI_API_KEY=" ENVIRON["NEXY_GEMINI_KEY"]; done = 1; next }
     { print }
     END { if (!done) print "GEMINI_API_KEY=" ENVIRON["NEXY_GEMINI_KEY"] }' "$cfg" > "$updated"
cat "$updated" > "$cfg"
rm -f "$updated"
fact after "GEMINI_API_KEY replaced ($(stat -c '%U:%G %a' "$cfg"))"
nexy_restart_and_verify
