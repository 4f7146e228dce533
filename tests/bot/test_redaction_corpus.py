"""A corpus of realistic lines with a secret in them (journal tracebacks, `az` and `gh` output, env
dumps, JSON and YAML configs, connection strings): none of the secrets reaches a Slack message, a
file uploaded to a thread, or a log line, while the symptom around each one is still shown."""

from __future__ import annotations

import logging

import pytest

from bot.redaction import MARK, RedactingFilter, redact, remember
from bot.slack_client import SlackClient, web_client

# (line, the secret in it, what must still be shown)
CORPUS = [
    ("May 01 10:00:01 Nexy python3[812]: google.genai.errors.ClientError: 400 INVALID_ARGUMENT. (POST https://"
     "generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSyB0123456789"
     "abcdefghijklmnopqrstu)", "AIzaSyB0123456789abcdefghijklmnopqrstu", "400 INVALID_ARGUMENT"),
    ("GEMINI_API_KEY=AIzaSyC9876543210zyxwvutsrqponmlkjihgf", "AIzaSyC9876543210zyxwvutsrqponmlkjihgf",
     "GEMINI_API_KEY="),
    ('{"clientId": "0c5e1b2a-1111-2222-3333-444455556666", "clientSecret": "Wq8Q~abcDEF.ghiJKL-mnoPQR_stu", '
     '"subscriptionId": "00000000-0000-0000-0000-000000000000", "tenantId": "72f988bf-0000-0000-0000-000000000000"}',
     "Wq8Q~abcDEF.ghiJKL-mnoPQR_stu", '"clientId"'),
    ('  "client_secret": "Xy7~pqRsTuVwXyZ0123456789aBcDeF",', "Xy7~pqRsTuVwXyZ0123456789aBcDeF", "client_secret"),
    ("client_secret: Zz9~aaBBccDDeeFFggHHiiJJkkLL", "Zz9~aaBBccDDeeFFggHHiiJJkkLL", "client_secret:"),
    ("  password: hunter2-is-not-a-password", "hunter2-is-not-a-password", "password:"),
    ("accessToken: eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJlX2hlcmU",
     "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9", "accessToken"),
    ('{"accessToken": "opaque-access-token-0123456789abcdef", "expiresOn": "2026-12-01 23:00:00.000000", '
     '"tokenType": "Bearer"}', "opaque-access-token-0123456789abcdef", "expiresOn"),
    ("REDIS_URL=redis://:s3cretRedisPass@10.0.0.4:6379/0", "s3cretRedisPass", "@10.0.0.4:6379/0"),
    ("redis.exceptions.ConnectionError: Error connecting to redis://default:Pa55word99@cache.internal:6380",
     "Pa55word99", "Error connecting to"),
    ("postgresql://nexy:pg-pass-9876@db.internal:5432/nexy", "pg-pass-9876", "db.internal:5432/nexy"),
    ("amqp://guest:guest-secret-42@mq:5672//", "guest-secret-42", "mq:5672"),
    ("DefaultEndpointsProtocol=https;AccountName=nexyassets;AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==;"
     "EndpointSuffix=core.windows.net", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==", "AccountName=nexyassets"),
    ("https://nexyassets.blob.core.windows.net/releases/Nexy.pkg?sv=2022-11-02&ss=b&sig=Ab3dEf%2Bgh1jK%3D&se=2026",
     "Ab3dEf%2Bgh1jK%3D", "blob.core.windows.net/releases/Nexy.pkg"),
    ("az ad sp create-for-rbac --name nexy-deploy --role contributor --password 'S3cr3t!Passw0rd'",
     "S3cr3t!Passw0rd", "az ad sp create-for-rbac"),
    ("az login --service-principal -u 0c5e1b2a-1111 --password Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8 --tenant contoso",
     "Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8", "--tenant contoso"),
    ("az account get-access-token: accessToken eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.abcdefghijklmnop",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0", "get-access-token"),
    ("gh auth status: Token: ghp_0123456789abcdefghijABCDEFGHIJklmnop", "ghp_0123456789abcdefghijABCDEFGHIJklmnop",
     "gh auth status"),
    ("GITHUB_TOKEN=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
     "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "GITHUB_TOKEN="),
    ("gh secret set AZURE_CREDENTIALS --body '{\"clientSecret\": \"Pq~0123456789abcdefghijKLMNOP\"}'",
     "Pq~0123456789abcdefghijKLMNOP", "gh secret set AZURE_CREDENTIALS"),
    ("SLACK_BOT_TOKEN=xoxb-111111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx",
     "xoxb-111111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx", "SLACK_BOT_TOKEN="),
    ("slack_sdk.errors.SlackApiError: token xapp-1-A01ABCDEF-1234567890123-abcdef0123456789 is revoked",
     "xapp-1-A01ABCDEF-1234567890123-abcdef0123456789", "is revoked"),
    ("SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5", "8f742231b10e8888abcd99yyyzzz85a5",
     "SLACK_SIGNING_SECRET="),
    ("Authorization: Bearer opaqueBearerToken.0123456789-abcdef", "opaqueBearerToken.0123456789-abcdef",
     "Authorization:"),
    ("requests.exceptions.HTTPError: 401 for url https://user:hunter22@registry.example.com/v2/",
     "hunter22", "401 for url"),
    ("X-Api-Key: 5d41402abc4b2a76b9719d911017c592", "5d41402abc4b2a76b9719d911017c592", "X-Api-Key"),
    ("export AZURE_CLIENT_SECRET=Vv8~Long.Secret-Value_0123456789", "Vv8~Long.Secret-Value_0123456789",
     "export AZURE_CLIENT_SECRET="),
    ("the client secret is Tq3~QwErTyUiOpAsDfGhJkLzXcVbNm0 and it expires on 2027-01-01",
     "Tq3~QwErTyUiOpAsDfGhJkLzXcVbNm0", "expires on 2027-01-01"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----",
     "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "deploy key loaded"),
    ("Traceback (most recent call last):\n  File \"server/main.py\", line 40, in init\n    client = "
     "genai.Client(api_key='AIzaSyD1111111111222222222233333333334')\nValueError: bad model",
     "AIzaSyD1111111111222222222233333333334", "ValueError: bad model"),
    ("pip install --index-url https://__token__:pypi-AgEIcHlwaS5vcmcCJGE@pypi.internal/simple grpcio",
     "pypi-AgEIcHlwaS5vcmcCJGE", "pip install"),
    ("sas_token=sp=r&st=2026-12-01&se=2026-12-02&sig=QWERTYUIOPasdfghjkl1234567890",
     "QWERTYUIOPasdfghjkl1234567890", "sas_token="),
    ("apiKey: sk-live-0123456789abcdefghij", "sk-live-0123456789abcdefghij", "apiKey:"),
]

KEPT = ["KeyError: 'GEMINI_MODEL'", "PermissionError: [Errno 13] Permission denied: '/home/azureuser/voice-assistant'",
        "API key expired. Please renew the API key.", "monkey=banana", "keys=3 status ok",
        "ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/main.py",
        "deploy run #42 of 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b succeeded",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "ssh_key_path: /etc/ssh/id"]


def _text(line: str, symptom: str) -> str:
    return f"{line}\n{symptom}" if symptom not in line else line


def test_the_corpus_is_big_enough():
    """At least 30 realistic lines, each with its own secret."""
    assert len(CORPUS) >= 30 and len({secret for _, secret, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("line, secret, symptom", CORPUS)
def test_each_secret_is_gone_and_its_symptom_stays(line, secret, symptom):
    """The secret leaves no part of itself; the words around it are still there."""
    out = redact(_text(line, symptom))
    assert secret not in out and secret[: max(8, len(secret) // 2)] not in out, out
    assert symptom in out and MARK in out, out


def test_ordinary_lines_and_evidence_are_kept():
    """Tracebacks, symptom lines, commit SHAs and digests are not mistaken for secrets."""
    for line in KEPT:
        assert redact(line) == line


def test_a_value_this_process_holds_is_redacted_anywhere():
    """A secret the bot holds (a setting, a key typed in a form) is redacted even with no telling shape."""
    remember("plain-looking-value-0042")
    assert redact("the value is plain-looking-value-0042!") == f"the value is {MARK}:known!"


def test_no_secret_reaches_slack_files_or_logs(slack, settings, caplog):
    """Posted through the Slack client as text, blocks and an uploaded file, and logged: no secret arrives."""
    client = SlackClient(web_client(settings))
    text = "\n".join(_text(line, symptom) for line, _, symptom in CORPUS)
    for line, _, symptom in CORPUS:
        body = _text(line, symptom)
        client.post("C0OPS", body, [{"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}}])
    client.upload("C0OPS", None, text, "output.txt", "the whole output")
    logger = logging.getLogger("nexy.test")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        caplog.handler.addFilter(RedactingFilter())
        for line, _, _ in CORPUS:
            logger.warning("script said: %s", line)
    uploaded = [f["content"] for m in slack.messages() for f in m.files]
    sent = str(slack.calls) + str(uploaded) + str([(m.text, m.blocks) for m in slack.messages()])
    for _, secret, symptom in CORPUS:
        assert secret not in sent and secret not in caplog.text, secret
        assert symptom in "\n".join(uploaded), symptom
    assert len(uploaded) == 1
