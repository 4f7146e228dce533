"""The sandbox console: type `/nexy ...` as a Slack user and watch the channel and its threads.

A thin layer over the Slack emulator: every line becomes a signed request to the bot, and every
message the bot posts is printed as it arrives, numbered so it can be reacted to or clicked.
When standard input is not a terminal, commands are read from it, each is answered before the
next, and the console exits after the last.
"""
from __future__ import annotations

import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from bot import render

HELP = """console commands:
  /nexy <command>           run a slash command as the current user (try /nexy help)
  @nexy <command>           mention the bot in the current incident thread
  /as <user-id> [name]      act as another Slack user, e.g. /as U0BOB bob
  /react <n> [emoji]        add a reaction (default white_check_mark) to message [n]
  /unreact <n> [emoji]      remove it
  /click <n> <button>       press a button of message [n] (by its label, e.g. Approve)
  /tick <n> <k> [k ...]     tick or untick checkbox k (1 = the first shown) of message [n]
  /home                     open the bot's App Home tab (prints the published view)
  /channel <id>             switch channel
  /scenario <name>          put the sandbox into a runbook fault (/scenario healthy heals it)
  /who, /help, /quit"""

QUIET_S = 0.4
"""A command counts as answered once the queues are idle and nothing was posted for this long."""

ANSWER_TIMEOUT_S = 600.0
"""The longest a piped command is waited for (a real run-command can take minutes)."""


class Console:
    """Reads console lines, drives the Slack emulator, prints what the bot posts."""

    def __init__(self, slack, *, idle: Callable[[], bool] = lambda: True, out: TextIO = sys.stdout,
                 channel: str = "C0OPS", user: str = "U0ALICE", sandbox=None):
        self.slack = slack
        self.idle = idle
        self.out = out
        self.channel = channel
        self.user = user
        self.sandbox = sandbox
        self.numbers: dict[str, int] = {}
        self.by_number: dict[int, str] = {}
        self.last_activity = time.monotonic()
        self.last_thread: dict[str, str] = {}
        self._lock = threading.Lock()
        slack.users.setdefault(user, "alice")
        slack.subscribe(self._on_message)

    # -- output --------------------------------------------------------------------------

    def _on_message(self, kind: str, message) -> None:
        with self._lock:
            self.last_activity = time.monotonic()
            if message.ephemeral_to and message.ephemeral_to != self.user:
                return
            if message.ts not in self.numbers:
                number = len(self.numbers) + 1
                self.numbers[message.ts] = number
                self.by_number[number] = message.ts
            number = self.numbers[message.ts]
            if message.thread_ts and message.thread_ts != message.ts:
                self.last_thread[message.channel] = message.thread_ts
            elif not message.ephemeral_to and message.user == self.slack.bot_user_id:
                self.last_thread[message.channel] = message.ts
            self.out.write(self.format(kind, number, message) + "\n")
            self.out.flush()

    def format(self, kind: str, number: int, message) -> str:
        body = render.plain(message.blocks) if message.blocks else message.text
        for attachment in message.files:
            body += f"\n📎 {attachment.get('name') or attachment.get('title')} ({len(attachment.get('content', ''))} chars)"
        who = "nexy" if message.user == self.slack.bot_user_id else self.slack.users.get(message.user, message.user)
        label = {"update": " (edited)", "reaction": " (reactions)"}.get(kind, "")
        if message.ephemeral_to:
            label += " (only you)"
        if kind == "reaction":
            body = " ".join(f":{name}: {', '.join(users)}" for name, users in message.reactions.items()) or "(none)"
        indent = "    ↳ " if message.thread_ts and message.thread_ts != message.ts else ""
        lines = self.readable(body).splitlines() or [""]
        head = f"{indent}[{number}] {who}{label}: {lines[0]}"
        pad = " " * (len(indent) + 4)
        return "\n".join([head, *(pad + line for line in lines[1:])])

    def readable(self, body: str) -> str:
        """Mentions as @names, dates as Slack shows them (the fallback: the reader's zone is UTC here)."""
        body = re.sub(r"<@([A-Z0-9]+)>", lambda m: "@" + self.slack.users.get(m.group(1), m.group(1)), body)
        return re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", body)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- input ---------------------------------------------------------------------------

    def run(self, stream: TextIO, interactive: bool | None = None) -> int:
        interactive = stream.isatty() if interactive is None else interactive
        if interactive:
            self.say("nexy sandbox console. /help for console commands, Ctrl-C to quit.")
        while True:
            if interactive:
                self.out.write(f"{self.slack.users.get(self.user, self.user)}@#{self.channel}> ")
                self.out.flush()
            line = stream.readline()
            if not line:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("/quit", "/exit"):
                break
            if not interactive:
                self.say(f"> {line}")
            self.handle(line)
            self.wait_answered()
        return 0

    def wait_answered(self, timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """Wait until the bot is idle and has posted nothing for a moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if time.monotonic() - self.last_activity >= QUIET_S and self.idle():
                return True
        self.say(f"(still waiting after {timeout:g} s; moving on)")
        return False

    def handle(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        head = words[0].lower()
        rest = line[len(words[0]):].strip()
        if head == "/nexy":
            self._check(self.slack.slash_command(rest, user=self.user, channel=self.channel))
        elif head in ("@nexy", "@bot"):
            thread = self.last_thread.get(self.channel)
            text = f"<@{self.slack.bot_user_id}> {rest}"
            self._check(self.slack.app_mention(text, user=self.user, channel=self.channel, thread_ts=thread))
        elif head == "/as" and len(words) >= 2:
            self.user = words[1]
            self.slack.users[self.user] = words[2] if len(words) > 2 else self.slack.users.get(self.user, self.user)
            self.say(f"(now acting as {self.slack.users[self.user]} <{self.user}>)")
        elif head in ("/react", "/unreact") and len(words) >= 2:
            self._react(head, words)
        elif head == "/click" and len(words) >= 3:
            self._click(words[1], " ".join(words[2:]))
        elif head == "/tick" and len(words) >= 3 and all(w.isdigit() for w in words[2:]):
            self._tick(words[1], [int(w) for w in words[2:]])
        elif head == "/home":
            self._check(self.slack.app_home_opened(user=self.user))
            self.wait_answered()
            view = self.slack.home_views.get(self.user)
            self.say(self.readable(render.plain(view["blocks"])) if view else "(no Home view was published)")
        elif head == "/channel" and len(words) == 2:
            self.channel = words[1]
            self.say(f"(now in #{self.channel})")
        elif head == "/scenario" and len(words) == 2:
            self._scenario(words[1])
        elif head == "/who":
            self.say(f"(you are {self.slack.users.get(self.user, self.user)} <{self.user}> in #{self.channel})")
        else:
            self.say(HELP)

    def _message(self, number: str):
        ts = self.by_number.get(int(number)) if number.isdigit() else None
        return self.slack.find(ts) if ts else None

    def _react(self, head: str, words: list[str]) -> None:
        message = self._message(words[1])
        if message is None:
            return self.say(f"(no message [{words[1]}])")
        emoji = (words[2] if len(words) > 2 else "white_check_mark").strip(":")
        send = self.slack.reaction_added if head == "/react" else self.slack.reaction_removed
        self._check(send(emoji, user=self.user, channel=message.channel, ts=message.ts))

    def _click(self, number: str, label: str) -> None:
        message = self._message(number)
        if message is None:
            return self.say(f"(no message [{number}])")
        for block in message.blocks:
            elements = block.get("elements", []) if block.get("type") == "actions" else [block.get("accessory") or {}]
            for element in elements:
                if element.get("type") == "button" and element["text"]["text"].lower() == label.lower():
                    self._check(self.slack.block_action(
                        user=self.user, channel=message.channel, message_ts=message.ts,
                        action_id=element["action_id"], value=element.get("value", ""),
                        block_id=block.get("block_id", "b")))
                    return
        self.say(f"(message [{number}] has no button {label!r})")

    def _tick(self, number: str, picks: list[int]) -> None:
        message = self._message(number)
        if message is None:
            return self.say(f"(no message [{number}])")
        for block in message.blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("type") == "checkboxes":
                    values = [o["value"] for o in element["options"]]
                    ticked = {o["value"] for o in element.get("initial_options") or []}
                    for pick in picks:
                        if 1 <= pick <= len(values):
                            ticked ^= {values[pick - 1]}
                    self._check(self.slack.checkboxes(user=self.user, channel=message.channel, message_ts=message.ts,
                                                      action_id=element["action_id"],
                                                      selected=[v for v in values if v in ticked]))
                    return
        self.say(f"(message [{number}] has no checkboxes)")

    def _scenario(self, name: str) -> None:
        if self.sandbox is None:
            return self.say("(no sandbox behind this console)")
        try:
            self.sandbox.apply(name)
            self.say(f"(sandbox is now in scenario {name})")
        except ValueError as exc:
            self.say(f"(sandbox: {exc})")

    def _check(self, response) -> None:
        if response.status_code != 200:
            self.say(f"(the bot answered HTTP {response.status_code}: {response.text[:200]})")
