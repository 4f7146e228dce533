"""The private form (a Slack modal) in which a person types a value that must never be posted in
the channel, a new API key; and the prompt with a button that opens it where no trigger is at hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import render
from bot.contract import Action

if TYPE_CHECKING:
    from bot.item import SecretInput

SECRET_BLOCK = "secret"
"""The block_id of the form's input (its errors are keyed by it)."""
SECRET_ACTION = "value"
"""The action_id of the form's text input."""


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def secret_modal(secret: SecretInput, words: str, metadata: str) -> dict:
    """The modal for `/nexy <words>`: one masked-by-nothing-but-the-modal text input and what happens next."""
    return {
        "type": "modal",
        "callback_id": Action.SECRET_FORM,
        "private_metadata": metadata,
        "title": _plain(secret.title),
        "submit": _plain("Plan the fix"),
        "close": _plain("Cancel"),
        "blocks": [
            render.section(f"*/nexy {words}*\n{secret.hint}"),
            {
                "type": "input",
                "block_id": SECRET_BLOCK,
                "label": _plain(secret.label),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SECRET_ACTION,
                    "max_length": 200,
                    "placeholder": _plain(secret.expected[:150]),
                },
                "hint": _plain("Only this form sees it; the channel never does."),
            },
        ],
    }


def open_form_prompt(words: str, metadata: str) -> tuple[str, list[dict]]:
    """For a mention (which carries no trigger to open a form with): a button that opens it."""
    text = f"`{words}` needs a value that must not be typed in the channel: open the private form."
    return text, [render.section(text), render.actions(render.button("Open the form", Action.OPEN_FORM, metadata))]
