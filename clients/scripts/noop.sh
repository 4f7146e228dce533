# shellcheck shell=bash
# noop: does nothing but report; measures the engine's own overhead.
fact ok yes
