"""The Slack app manifest: exactly the scopes the code needs, the commands the registry has, and what
`nexy manifest` prints (the only copy: none is committed) valid against Slack's manifest schema."""
from __future__ import annotations

import ast
import copy
import inspect
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from slack_sdk import WebClient

from nexy.registry import build_registry
from nexy.manifest import DEFAULT_URL, SCOPES, render
from tests.slack_manifest_schema import SCHEMA

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "jobs", "runbook")

METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.getPermalink": None,
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "conversations.replies": "channels:history",
    "conversations.history": "channels:history",
    "views.open": None,
    "views.publish": None,
    "views.update": None,
    "apps.connections.open": None,  # the app-level token's connections:write, not a bot scope
}
"""Slack's documented bot-token scope of each Web API method the bot may call (None: no scope)."""

EVENT_SCOPES: dict[str, str | None] = {
    "app_mention": "app_mentions:read",
    "reaction_added": "reactions:read",
    "reaction_removed": "reactions:read",
    "app_home_opened": None,
}
"""Slack's documented scope of each event the bot may subscribe to."""

FRAMEWORK_CALLS = {"auth.test", "apps.connections.open"}
"""Called by Bolt and slack_sdk themselves: the token check at start, and opening Socket Mode."""


def _sources() -> list[tuple[Path, ast.Module]]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [(p, ast.parse(p.read_text(), str(p))) for p in files]


def _api_methods(client_method: str, seen: set[str] | None = None) -> set[str]:
    """The Web API methods a WebClient method calls (files_upload_v2 calls two), from slack_sdk's source."""
    seen = seen if seen is not None else set()
    if client_method in seen:
        return set()
    seen.add(client_method)
    source = inspect.getsource(getattr(WebClient, client_method))
    found = set(re.findall(r'api_call\(\s*"([A-Za-z.]+)"', source))
    for inner in re.findall(r"self\.(\w+)\(", source):
        if inner in vars(WebClient) and not inner.startswith("_"):
            found |= _api_methods(inner, seen)
    return found


def called_methods() -> set[str]:
    """Every Slack Web API method our code calls through a WebClient, and those Bolt calls itself."""
    wrappers = {name for name in vars(WebClient) if not name.startswith("_") and callable(getattr(WebClient, name))}
    methods = set(FRAMEWORK_CALLS)
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in wrappers:
                methods |= _api_methods(node.func.attr)
    return methods


def listeners() -> dict[str, set[str]]:
    """What handlers/ registers on the Bolt app: events, commands, actions and views."""
    found: dict[str, set[str]] = {"event": set(), "command": set(), "action": set(), "view": set()}
    for path, tree in _sources():
        if path.parent.name != "handlers":
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in found and node.args):
                first = node.args[0]
                found[node.func.attr].add(first.value if isinstance(first, ast.Constant) else "<pattern>")
    return found


def manifest(url: str = DEFAULT_URL, socket_mode: bool = False) -> dict:
    return yaml.safe_load(render(build_registry(), url, socket_mode=socket_mode))


def test_scopes_are_exactly_what_the_code_calls_and_listens_to():
    """The bot scopes are the union of the scopes of the Web API methods called and events handled."""
    methods, heard = called_methods(), listeners()
    assert {"chat.postMessage", "files.completeUploadExternal", "usergroups.users.list"} <= methods
    unknown = sorted(m for m in methods if m not in METHOD_SCOPES)
    assert not unknown, f"add these Web API methods and their scopes to METHOD_SCOPES: {unknown}"
    needed = {METHOD_SCOPES[m] for m in methods} | {EVENT_SCOPES[e] for e in heard["event"]}
    if heard["command"]:
        needed.add("commands")
    needed.discard(None)
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    assert sorted(scopes) == sorted(needed)
    assert set(SCOPES) == set(scopes) and all(SCOPES.values())
    assert not {"groups:history", "reactions:write"} & set(scopes)


def test_events_commands_and_interactivity_match_the_listeners():
    """bot_events are the handled events (plus app_home_opened for the Home tab); /nexy and buttons are declared."""
    heard, app = listeners(), manifest()
    home = app["features"]["app_home"]["home_tab_enabled"]
    assert set(app["settings"]["event_subscriptions"]["bot_events"]) == heard["event"] | (
        {"app_home_opened"} if home else set())
    assert {c["command"] for c in app["features"]["slash_commands"]} == heard["command"] == {"/nexy"}
    assert app["settings"]["interactivity"]["is_enabled"] == bool(heard["action"] or heard["view"])


def test_usage_hint_lists_every_command_the_parser_takes(registry):
    """usage_hint is generated from the registry: each entry is a command the parser accepts."""
    hint = manifest()["features"]["slash_commands"][0]["usage_hint"]
    entries = hint.split(" | ")
    assert len(entries) == len(registry.commands)
    assert all(entry.startswith(name) for entry, name in zip(entries, registry.commands, strict=True))
    fix = next(e for e in entries if e.startswith("fix <"))
    assert set(fix[5:-1].split("|")) == set(registry.commands["fix"].args[0].choices) and "help [command]" in entries
    assert hint == " | ".join(c.usage.removeprefix("/nexy ") for c in registry.commands.values())


@pytest.mark.parametrize("flags", [[], ["--url", "https://bot.example.org"], ["--socket-mode"]],
                         ids=["placeholder", "url", "socket-mode"])
def test_nexy_manifest_prints_a_valid_manifest(flags, registry):
    """`nexy manifest`, the manifest's only source, prints the template for the registry's commands, valid
    against Slack's schema, each scope with why."""
    printed = subprocess.run([sys.executable, "-m", "nexy.cli", "manifest", *flags], capture_output=True, text=True,
                             cwd=ROOT, timeout=60, check=True).stdout
    url = flags[1] if flags[:1] == ["--url"] else DEFAULT_URL
    assert printed == render(registry, url, socket_mode="--socket-mode" in flags)
    jsonschema.validate(yaml.safe_load(printed), SCHEMA)
    assert all(f"- {scope:<18} # {why}" in printed for scope, why in SCOPES.items())


@pytest.mark.parametrize("socket_mode", [False, True], ids=["http", "socket-mode"])
def test_manifest_is_valid_against_slacks_schema(socket_mode):
    """Both variants pass Slack's manifest schema; the HTTP one points every request at /slack/events."""
    app = manifest("https://bot.example.org", socket_mode=socket_mode)
    jsonschema.validate(app, SCHEMA)
    urls = [app["features"]["slash_commands"][0].get("url"), app["settings"]["event_subscriptions"].get("request_url"),
            app["settings"]["interactivity"].get("request_url")]
    assert urls == ([None] * 3 if socket_mode else ["https://bot.example.org/slack/events"] * 3)
    assert app["settings"]["socket_mode_enabled"] is socket_mode


@pytest.mark.parametrize("break_it, where", [
    (lambda m: m["features"]["slash_commands"][0].update(usage_hint="x" * 1001), "usage_hint"),
    (lambda m: m["features"]["slash_commands"][0].pop("url"), "url"),
    (lambda m: m["display_information"].update(name="n" * 36), "name"),
    (lambda m: m["oauth_config"]["scopes"].update(bots=["chat:write"]), "bots"),
])
def test_schema_refuses_what_slack_refuses(break_it, where):
    """The schema is not vacuous: a too-long usage hint, a missing URL in HTTP mode, a long name, a typo fail."""
    broken = copy.deepcopy(manifest())
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(broken, SCHEMA)
    assert where in str(caught.value)
