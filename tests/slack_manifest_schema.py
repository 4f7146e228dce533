"""The part of Slack's app manifest schema (manifest version 1) that a bot like this one uses, as a
JSON Schema (draft 7), with Slack's documented required fields and limits. Unknown keys are
refused as Slack refuses them. Slack's rule that a request URL is needed unless Socket Mode is on
is written as the `if`/`then` at the end.
"""

from __future__ import annotations

_HTTP_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 3500}
_EVENT_LIST = {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 100, "uniqueItems": True}
_SCOPE_LIST = {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 255}


def _strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


SLASH_COMMAND = _strict(
    {
        "command": {"type": "string", "minLength": 2, "maxLength": 32, "pattern": r"^/"},
        "url": {"type": "string", "pattern": r"^https?://", "maxLength": 3000},
        "description": {"type": "string", "minLength": 1, "maxLength": 2000},
        "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
        "should_escape": {"type": "boolean"},
    },
    ("command", "description"),
)

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_strict(
        {
            "_metadata": _strict({"major_version": {"type": "integer"}, "minor_version": {"type": "integer"}}),
            "display_information": _strict(
                {
                    "name": {"type": "string", "minLength": 1, "maxLength": 35},
                    "description": {"type": "string", "minLength": 1, "maxLength": 140},
                    "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
                    "background_color": {"type": "string", "pattern": r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"},
                },
                ("name",),
            ),
            "features": _strict(
                {
                    "app_home": _strict(
                        {
                            "home_tab_enabled": {"type": "boolean"},
                            "messages_tab_enabled": {"type": "boolean"},
                            "messages_tab_read_only_enabled": {"type": "boolean"},
                        }
                    ),
                    "bot_user": _strict(
                        {
                            "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                            "always_online": {"type": "boolean"},
                        },
                        ("display_name",),
                    ),
                    "slash_commands": {"type": "array", "items": SLASH_COMMAND, "minItems": 1, "maxItems": 50},
                    "unfurl_domains": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
                }
            ),
            "oauth_config": _strict(
                {
                    "redirect_urls": {"type": "array", "items": {"type": "string", "maxLength": 2500},
                                      "maxItems": 1000},
                    "scopes": _strict({"bot": _SCOPE_LIST, "user": _SCOPE_LIST}),
                    "token_management_enabled": {"type": "boolean"},
                }
            ),
            "settings": _strict(
                {
                    "event_subscriptions": _strict(
                        {"request_url": _HTTP_URL, "bot_events": _EVENT_LIST, "user_events": _EVENT_LIST}
                    ),
                    "interactivity": _strict(
                        {"is_enabled": {"type": "boolean"}, "request_url": _HTTP_URL,
                         "message_menu_options_url": _HTTP_URL},
                        ("is_enabled",),
                    ),
                    "org_deploy_enabled": {"type": "boolean"},
                    "socket_mode_enabled": {"type": "boolean"},
                    "token_rotation_enabled": {"type": "boolean"},
                }
            ),
        },
        ("display_information",),
    ),
    # Without Socket Mode, Slack must know where to send: every slash command, the events and the
    # interactive payloads need a request URL.
    "if": {"not": {"properties": {"settings": {"properties": {"socket_mode_enabled": {"const": True}},
                                               "required": ["socket_mode_enabled"]}},
                   "required": ["settings"]}},
    "then": {
        "properties": {
            "features": {"properties": {"slash_commands": {"items": {"required": ["url"]}}}},
            "settings": {
                "properties": {
                    "event_subscriptions": {"required": ["request_url"]},
                    "interactivity": {
                        "if": {"properties": {"is_enabled": {"const": True}}},
                        "then": {"required": ["request_url"]},
                    },
                }
            },
        }
    },
}
