# shellcheck shell=bash
# Test fixture: 400 lines of output (well past Azure's 4,096 bytes), then a fact.
i=0
while [ "$i" -lt 400 ]; do
    echo "line $i of noisy output"
    i=$((i + 1))
done
fact lines 400
