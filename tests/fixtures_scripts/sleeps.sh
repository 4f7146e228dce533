# shellcheck shell=bash
# Test fixture: a script that runs long (NEXY_SLEEP_S seconds), to be timed out or stopped.
echo "sleeping ${NEXY_SLEEP_S:-30} s"
sleep "${NEXY_SLEEP_S:-30}"
fact slept yes
