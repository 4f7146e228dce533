# shellcheck shell=bash
# Apply and verify `fix api-key` (runbook 6, 6.3). Refuses if config.env changed since the plan
# (NEXY_EXPECT). Then, before anything changes, a minimal Gemini call with the new key from this
# VM (NEXY_GEMINI_URL; the key in a header curl reads from its standard input); a refused key stops
# here. Then GEMINI_API_KEY is replaced in place (owner and mode kept), restart only if the 0.1
# preflight passes, verify: the journal since the restart must be free of API_KEY_INVALID and
# TextProcessor errors. The key (NEXY_GEMINI_KEY) is never printed, never on a command line (only
# builtins see it: `printf`, `read`, `[`) and never in a temporary file: config.env is rewritten
# from memory, so a failed apply leaves no copy of it behind (the wrapper also removes its
# temporary directory however the run ends).
cfg="$NEXY_APP_DIR/config.env"
sha=$(sha256sum < "$cfg" | cut -c1-16)
fact before_sha "$sha"
if [ "$sha" != "$NEXY_EXPECT" ]; then
    fact outcome stale
    exit 3
fi
umask 077
echo "+ curl POST $NEXY_GEMINI_URL (smoke test of the new key, before any change)"
code=$(printf 'x-goog-api-key: %s\n' "$NEXY_GEMINI_KEY" | curl -sS -o /dev/null -w '%{http_code}' --max-time 15 \
    -H @- -H 'Content-Type: application/json' \
    -d '{"contents":[{"parts":[{"text":"ping"}]}],"generationConfig":{"maxOutputTokens":1}}' \
    "$NEXY_GEMINI_URL" 2>/dev/null || echo 000)
fact smoke "$code"
if [ "$code" != 200 ]; then
    fact outcome smoke_failed
    exit 7
fi
echo "+ GEMINI_API_KEY replaced in $cfg (in place: owner and mode kept)"
updated=""
done_key=no
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        GEMINI_API_KEY=*)
            if [ "$done_key" = no ]; then updated+="GEMINI_API_KEY=$NEXY_GEMINI_KEY"$'\n'; fi
            done_key=yes ;;
        *) updated+="$line"$'\n' ;;
    esac
done < "$cfg"
if [ "$done_key" = no ]; then updated+="GEMINI_API_KEY=$NEXY_GEMINI_KEY"$'\n'; fi
printf '%s' "$updated" > "$cfg"
updated=""
fact after "GEMINI_API_KEY replaced ($(stat -c '%U:%G %a' "$cfg"))"
nexy_restart_and_verify
