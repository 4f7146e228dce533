# shellcheck shell=bash
# Test fixture: a journal dump whose 4 KB tail starts inside a private key (its BEGIN line is cut
# away by Azure): filler, the key (NEXY_KEY_LINES: its body lines separated by commas), the
# symptom line the report must still show, then more lines.
for n in $(seq 1 60); do
    printf 'Dec 02 00:07:%02d Nexy python3[4242]: loading plugin %d of 60 from /opt/nexy/plugins\n' "$((n % 60))" "$n"
done
echo "Dec 02 00:08:01 Nexy python3[4242]: -----BEGIN RSA PRIVATE KEY-----"
printf '%s\n' "$NEXY_KEY_LINES" | tr ',' '\n' | sed 's/^/Dec 02 00:08:01 Nexy python3[4242]: /'
echo "Dec 02 00:08:01 Nexy python3[4242]: -----END RSA PRIVATE KEY-----"
echo "Dec 02 00:08:02 Nexy python3[4242]: RuntimeError: TLS context failed to load the deploy key"
for n in $(seq 1 20); do
    printf 'Dec 02 00:08:03 Nexy python3[4242]: worker %d of 20 stopped after the TLS failure\n' "$n"
done
fact key_lines "$(printf '%s' "$NEXY_KEY_LINES" | tr ',' '\n' | wc -l)"
