# shellcheck shell=bash
# Test fixture: prints, then fails under set -e before its last line.
echo before
false
echo never
