# shellcheck shell=bash
# Runbook 0.1: the four guardrails that must pass before any restart (facts pf_*).
# Never prints the key itself.
nexy_preflight || true
