"""Block Kit building blocks, and the clamp that keeps every message inside Slack's limits.

Slack rejects a message with more than 50 blocks, a section text over 3,000 characters or a
text over 40,000 characters; `fit()` cuts what is too long and says so, so a post is never
rejected for its size.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40000
MAX_BUTTON_TEXT = 75
CUT_NOTE = "… (cut: {n} more characters)"

Block = dict[str, Any]


def cut(text: str, limit: int) -> str:
    """The text, cut to `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    note = CUT_NOTE.format(n=len(text) - limit)
    keep = max(0, limit - len(note) - 1)
    return text[:keep] + "\n" + note if keep else note[:limit]


def tail(text: str, limit: int) -> str:
    """The end of the text (where logs keep their newest lines), with a note of how much was left out."""
    if len(text) <= limit:
        return text
    note = f"(cut: the first {len(text) - limit} characters)"
    return note + "\n…" + text[-(limit - len(note) - 2) :]


def escape(text: str) -> str:
    """Typed text made inert for Slack: `<!channel>`, `<@U…>` and links show as text, ping no one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def section(text: str, *, fields: list[str] | None = None, accessory: dict | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [mrkdwn(f) for f in fields]
    if accessory:
        block["accessory"] = accessory
    return block


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts if t]}


def noted(note: str, text: str, blocks: list[Block] | None) -> tuple[str, list[Block] | None]:
    """A message with a note ahead of it: in its text, and as a context block above its blocks."""
    return f"{note} {text}", [context(note), *blocks] if blocks else None


def code(text: str) -> str:
    """Text as a Slack code block; backticks inside cannot break out of it."""
    return "```" + text.replace("```", "ˋˋˋ") + "```" if text else "_(empty)_"


def link(url: str | None, label: str) -> str:
    """A Slack link, or the bare label when there is no URL."""
    return f"<{url}|{label}>" if url else label


def utc_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown time"


def date(ts: float) -> str:
    """A Slack date token: the date and time in each reader's own zone (UTC where it cannot show)."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{fallback}>"


def duration(seconds: float) -> str:
    """`12 s`, `4 min 05 s`, `1 h 05 min`, `2 d 3 h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def listed(items: Iterable[object], limit: int = 6) -> str:
    """`a`, `b`, `c` (+2 more): names in backticks, the first `limit` of them."""
    shown_items = list(items)
    shown = ", ".join(f"`{i}`" for i in shown_items[:limit])
    return shown + (f" (+{len(shown_items) - limit} more)" if len(shown_items) > limit else "")


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict:
    element = {
        "type": "button",
        "text": {"type": "plain_text", "text": cut(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        element["style"] = style
    return element


def actions(*elements: dict, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def fit(text: str, blocks: list[Block] | None, max_blocks: int = MAX_BLOCKS) -> tuple[str, list[Block] | None]:
    """Clamp text and blocks to Slack's limits (50 blocks a message, 100 a view); what is cut is
    marked, nothing is rejected."""
    text = cut(text or " ", MAX_MESSAGE_TEXT)
    if not blocks:
        return text, None
    fitted = [_fit_block(block) for block in blocks]
    if len(fitted) > max_blocks:
        left_out = len(fitted) - (max_blocks - 1)
        fitted = [*fitted[: max_blocks - 1], context(f"… {left_out} more blocks were cut")]
    return text, fitted


def _fit_block(block: Block) -> Block:
    block = dict(block)
    kind = block.get("type")
    if kind == "section":
        if "text" in block:
            block["text"] = {**block["text"], "text": cut(block["text"]["text"], MAX_SECTION_TEXT)}
        if "fields" in block:
            block["fields"] = [{**f, "text": cut(f["text"], MAX_FIELD_TEXT)} for f in block["fields"][:MAX_FIELDS]]
    elif kind == "header":
        block["text"] = {**block["text"], "text": cut(block["text"]["text"], MAX_HEADER_TEXT)}
    elif kind == "context":
        block["elements"] = [
            {**e, "text": cut(e["text"], MAX_SECTION_TEXT)} if "text" in e else e
            for e in block["elements"][:MAX_CONTEXT_ELEMENTS]
        ]
    return block


def plain(blocks: list[Block] | None) -> str:
    """A readable plain-text rendering of blocks (the console, notification text)."""
    lines: list[str] = []
    for block in blocks or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            if "text" in block:
                lines.append(block["text"]["text"])
            lines.extend(f["text"] for f in block.get("fields", []))
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                lines.append(f"[{accessory['text']['text']}]")
        elif kind == "context":
            lines.append("  ".join(e.get("text", "") for e in block["elements"]))
        elif kind == "divider":
            lines.append("---")
        elif kind == "actions":
            lines.append(" ".join(f"[{e['text']['text']}]" for e in block["elements"] if "text" in e))
            for element in block["elements"]:
                if element.get("type") == "checkboxes":
                    ticked = {o.get("value") for o in element.get("initial_options") or []}
                    lines.extend(
                        f"{'☑' if o.get('value') in ticked else '☐'} {o['text']['text']}" for o in element["options"]
                    )
    return "\n".join(lines)
