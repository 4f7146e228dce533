# shellcheck shell=bash
# Test fixture: print the environment the script runs with.
env
