# shellcheck shell=bash disable=SC2329
# Functions shared by the VM scripts (included by the wrapper before the body).
# They read only validated parameters: NEXY_APP_DIR, NEXY_SERVICE, NEXY_SERVICE_USER,
# NEXY_VERIFY_URLS, NEXY_VERIFY_WAIT_S, NEXY_VERIFY_POLL_S, NEXY_VERIFY_SETTLE_S, NEXY_SYMPTOMS.

# nexy_patterns_file BASE64: a temporary file of the patterns a parameter carries (base64 of one
# extended regular expression a line), for `grep -E -f`; the caller removes it.
nexy_patterns_file() {
    file=$(mktemp)
    printf '%s' "$1" | base64 -d > "$file"
    printf '%s' "$file"
}

# nexy_preflight: runbook 0.1, the four guardrails; records pf_* facts; fails if any guardrail fails.
nexy_preflight() {
    cfg="$NEXY_APP_DIR/config.env"
    pf_failed=""
    if [ -f "$cfg" ]; then fact pf_config_exists yes; else fact pf_config_exists no; pf_failed="${pf_failed:-config_exists}"; fi
    key_state=missing
    if [ -f "$cfg" ] && ! [ -r "$cfg" ]; then
        key_state=unreadable
    elif [ -f "$cfg" ] && grep -q '^GEMINI_API_KEY=' "$cfg"; then
        value=$(grep '^GEMINI_API_KEY=' "$cfg" | tail -n 1 | cut -d= -f2- | tr -d "\"' \r")
        case "$value" in
            ""|*your*|*YOUR*|*changeme*|*CHANGE*|*placeholder*|*PLACEHOLDER*|*xxx*|*XXX*|"<"*) key_state=placeholder ;;
            *) key_state=present ;;
        esac
    fi
    fact pf_api_key "$key_state"
    [ "$key_state" = present ] || pf_failed="${pf_failed:-api_key}"
    if sudo -n -u "$NEXY_SERVICE_USER" test -r "$cfg" 2>/dev/null; then
        fact pf_config_readable yes
    else
        fact pf_config_readable no
        pf_failed="${pf_failed:-config_readable}"
    fi
    fact pf_config_stat "$(stat -c '%U:%G %a' "$cfg" 2>/dev/null || echo missing)"
    execstart=$(systemctl cat "$NEXY_SERVICE" 2>/dev/null | grep '^ExecStart=' | tail -n 1 || true)
    fact pf_execstart "$execstart"
    case "$execstart" in
        *" server/main.py"|*" $NEXY_APP_DIR/server/main.py") fact pf_execstart_ok yes ;;
        *) fact pf_execstart_ok no; pf_failed="${pf_failed:-execstart_ok}" ;;
    esac
    fact pf_failed "$pf_failed"
    [ -z "$pf_failed" ]
}

# nexy_journal_since_start: the service's journal since its last start.
nexy_journal_since_start() {
    journalctl -u "$NEXY_SERVICE" -n 200 --no-pager 2>&1 \
        | awk '/systemd\[[0-9]+\]: (Started|Starting) /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}'
}

# nexy_verify: service active, every health URL answers, and the journal since the restart is
# free of the fix's symptoms (NEXY_SYMPTOMS). Records verify_* facts; fails if any check fails.
nexy_verify() {
    ok=0
    first_url=$(printf '%s' "$NEXY_VERIFY_URLS" | cut -d, -f1)
    # Look every NEXY_VERIFY_POLL_S until it answers or has failed, for NEXY_VERIFY_WAIT_S (whole
    # seconds: at least that long, less than a second more).
    deadline=$(($(date +%s) + NEXY_VERIFY_WAIT_S))
    while [ "$(date +%s)" -le "$deadline" ]; do
        if curl -fsS --max-time 3 "$first_url" >/dev/null 2>&1; then break; fi
        state=$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)
        [ "$state" = failed ] && break
        sleep "$NEXY_VERIFY_POLL_S"
    done
    sleep "$NEXY_VERIFY_SETTLE_S"  # a service that dies right after answering once is not healthy
    state=$(systemctl is-active "$NEXY_SERVICE" 2>/dev/null || true)
    fact verify_active "$state"
    [ "$state" = active ] || ok=1
    n=0
    for url in $(printf '%s' "$NEXY_VERIFY_URLS" | tr ',' ' '); do
        n=$((n + 1))
        if curl -fsS --max-time 5 "$url" >/dev/null 2>&1; then
            fact "verify_health_$n" "ok $url"
        else
            fact "verify_health_$n" "fail $url"
            ok=1
        fi
    done
    symptoms=$(nexy_patterns_file "$NEXY_SYMPTOMS")
    if [ -s "$symptoms" ] && nexy_journal_since_start | grep -Eq -f "$symptoms"; then
        fact verify_journal "symptom still in the journal since the restart"
        ok=1
    else
        fact verify_journal clean
    fi
    rm -f "$symptoms"
    return "$ok"
}

# nexy_restart_and_verify: the end of every fix: restart only if the 0.1 preflight passes (else
# return 4, not restarted), then verify (return 5 if any check fails).
nexy_restart_and_verify() {
    if ! nexy_preflight; then
        fact outcome preflight_failed
        return 4
    fi
    echo "+ sudo systemctl restart $NEXY_SERVICE"
    sudo systemctl restart "$NEXY_SERVICE"
    fact restarted yes
    if nexy_verify; then
        fact outcome verified
        return 0
    fi
    fact outcome verify_failed
    return 5
}

# nexy_deps_mismatches FREEZE_FILE PINS_FILE: one line `name|installed|wanted` for every package of
# server/requirements.txt and of the pins (one requirement a line) that the venv does not satisfy
# (`missing` when not installed). Run from NEXY_APP_DIR. Needs only the venv's python (no packaging
# module on the VM): it compares release numbers, as pip does for the runbook's plain pins.
nexy_deps_mismatches() {
    "$NEXY_APP_DIR/venv/bin/python" - "$1" server/requirements.txt "$2" <<'PY'
import re
import sys


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def release(text):
    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:4])


def satisfies(version, spec):
    have = release(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.match(r"(===|==|!=|>=|<=|~=|>|<)\s*(\S+)", clause)
        if not match:
            continue
        op, want = match.groups()
        need = release(want)
        width = max(len(have), len(need))
        a, b = have + (0,) * (width - len(have)), need + (0,) * (width - len(need))
        if op in ("==", "===") and want.endswith(".*"):
            ok = have[: len(need)] == need
        else:
            ok = {"==": a == b, "===": version == want, "!=": a != b, ">=": a >= b, "<=": a <= b,
                  ">": a > b, "<": a < b, "~=": a >= b and have[: len(need) - 1] == need[: len(need) - 1]}[op]
        if not ok:
            return False
    return True


installed = {}
for line in open(sys.argv[1], encoding="utf-8"):
    if "==" in line:
        name, _, version = line.strip().partition("==")
        installed[norm(name)] = version
wanted = {}
for path in sys.argv[2:]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        continue
    for raw in lines:
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(\[[^\]]*\])?\s*(.*)", line)
        if match:
            name, spec = norm(match.group(1)), re.sub(r"\s+", "", match.group(3))
            clauses = [c for c in (*wanted.get(name, "").split(","), *spec.split(",")) if c]
            wanted[name] = ",".join(dict.fromkeys(clauses))
for name, spec in sorted(wanted.items()):
    have = installed.get(name)
    if have is None or not satisfies(have, spec):
        print(f"{name}|{have or 'missing'}|{spec or 'any'}")
PY
}
