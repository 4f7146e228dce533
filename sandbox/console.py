"""The sandbox console: type `/nexy ...` as a Slack user and watch the channel and its threads.

A thin layer over the Slack emulator: every line becomes a signed request to the bot, and every
message the bot posts is printed as it arrives, numbered so it can be reacted to or clicked.
At a terminal the console has line editing, history (kept under the sandbox's data folder) and
tab completion, and it never waits for an answer: type the next command at once (so `/nexy queue`
can show what waits), and answers appear above the prompt. When standard input is not a
terminal, commands are read from it, each is answered before the next, and the console exits
after the last.
"""
from __future__ import annotations

import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from bot import render

CONSOLE_COMMANDS = {
    "/nexy": ("/nexy <command>", "run a slash command as the current user (try /nexy help)"),
    "@nexy": ("@nexy <command>", "mention the bot in the current incident thread"),
    "/as": ("/as <user-id> [name]", "act as another Slack user, e.g. /as U0BOB bob"),
    "/react": ("/react <n> [emoji]", "add a reaction (default white_check_mark) to message [n]"),
    "/unreact": ("/unreact <n> [emoji]", "remove it"),
    "/click": ("/click <n> <button>", "press a button of message [n] (by its label, e.g. Approve)"),
    "/tick": ("/tick <n> <k> [k ...]", "tick or untick checkbox k (1 = the first shown) of message [n]"),
    "/home": ("/home", "open the bot's App Home tab (prints the published view)"),
    "/channel": ("/channel <id>", "switch channel"),
    "/scenario": ("/scenario [name]", "put the sandbox into a runbook fault (/scenario healthy heals it); "
                                      "without a name, list them"),
    "/who": ("/who", "who and where you are"),
    "/help": ("/help", "this list"),
    "/quit": ("/quit", "stop the sandbox (or Ctrl-D; Ctrl-C stops it too)"),
}
"""The console's own commands: usage and what each does (the help is built from this)."""

HELP = "console commands:\n" + "\n".join(f"  {usage:<26}{what}" for usage, what in CONSOLE_COMMANDS.values())

QUIET_S = 0.4
"""A command counts as answered once the queues are idle and nothing was posted for this long."""

ANSWER_TIMEOUT_S = 600.0
"""The longest a piped command is waited for (a real run-command can take minutes)."""

HISTORY_LINES = 1000
"""How many lines of console history are kept."""


class Console:
    """Reads console lines, drives the Slack emulator, prints what the bot posts."""

    def __init__(self, slack, *, idle: Callable[[], bool] = lambda: True, out: TextIO = sys.stdout,
                 channel: str = "C0OPS", user: str = "U0ALICE", sandbox=None, history: Path | None = None,
                 commands: Iterable[str] = ()):
        self.slack = slack
        self.idle = idle
        self.out = out
        self.channel = channel
        self.user = user
        self.sandbox = sandbox
        self.history = history
        self.commands = sorted(commands)  # the bot's commands, for tab completion after /nexy
        self.numbers: dict[str, int] = {}
        self.by_number: dict[int, str] = {}
        self.last_activity = time.monotonic()
        self.last_thread: dict[str, str] = {}
        self._lock = threading.Lock()
        self._prompting = False  # a prompt (and maybe a half-typed line) is on screen
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
            self._show(self.format(kind, number, message))

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
        with self._lock:
            self._show(text)

    def _show(self, text: str) -> None:
        """Print a line; at a terminal, above the prompt and what is typed so far (redrawn below)."""
        if not self._prompting:
            self.out.write(text + "\n")
        else:
            import readline

            self.out.write("\r\033[K" + text + "\n" + self._prompt() + readline.get_line_buffer())
        self.out.flush()

    def _prompt(self) -> str:
        return f"{self.slack.users.get(self.user, self.user)}@#{self.channel}> "

    # -- input ---------------------------------------------------------------------------

    def run(self, stream: TextIO, interactive: bool | None = None) -> int:
        """Read and handle lines until end of input or /quit. Interactive: never wait for an answer."""
        interactive = stream.isatty() if interactive is None else interactive
        terminal = interactive and stream is sys.stdin and stream.isatty()
        if terminal:
            self._start_readline()
        if interactive:
            self.say("nexy sandbox console. /help for console commands, Ctrl-C to quit.")
        try:
            while True:
                line = self._read(stream, interactive, terminal)
                if line is None:
                    break
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line in ("/quit", "/exit"):
                    break
                if not interactive:
                    self.say(f"> {line}")
                self.handle(line)
                if not interactive:
                    self.wait_answered()
        finally:
            if terminal:
                self._save_history()
        return 0

    def _read(self, stream: TextIO, interactive: bool, terminal: bool) -> str | None:
        if terminal:
            self._prompting = True
            try:
                return input(self._prompt())  # readline: editing, history, completion
            except EOFError:
                self.out.write("\n")
                return None
            finally:
                self._prompting = False
        if interactive:
            self.out.write(self._prompt())
            self.out.flush()
        return stream.readline() or None

    def _start_readline(self) -> None:
        import readline

        if self.history is not None:
            try:
                readline.read_history_file(self.history)
            except OSError:
                pass
        readline.set_history_length(HISTORY_LINES)
        readline.set_completer_delims(" ")
        readline.set_completer(self._complete)
        readline.parse_and_bind("tab: complete")

    def _save_history(self) -> None:
        import readline

        if self.history is not None:
            try:
                readline.write_history_file(self.history)
            except OSError:
                pass

    def _complete(self, text: str, state: int) -> str | None:
        """Tab completion: console commands first, then the bot's command after /nexy or @nexy."""
        import readline

        before = readline.get_line_buffer()[: readline.get_begidx()].split()
        if not before:
            options = list(CONSOLE_COMMANDS)
        elif before[0] in ("/nexy", "@nexy") and len(before) == 1:
            options = self.commands
        elif before[0] == "/scenario" and len(before) == 1 and self.sandbox is not None:
            from sandbox.stack import scenarios

            options = sorted(scenarios())
        else:
            options = []
        matches = [o + " " for o in options if o.startswith(text)]
        return matches[state] if state < len(matches) else None

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
            self._home()
        elif head == "/channel" and len(words) == 2:
            self.channel = words[1]
            self.say(f"(now in #{self.channel})")
        elif head == "/scenario" and len(words) <= 2:
            self._scenario(words[1] if len(words) == 2 else None)
        elif head == "/who":
            self.say(f"(you are {self.slack.users.get(self.user, self.user)} <{self.user}> in #{self.channel})")
        elif head == "/help":
            self.say(HELP)
        elif head in CONSOLE_COMMANDS:
            self.say(f"(usage: {CONSOLE_COMMANDS[head][0]})")
        else:
            self.say(f"(unknown console command {words[0]!r}; /help lists them, /nexy help lists the bot's)")

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

    def _home(self, timeout: float = 30.0) -> None:
        """Open the Home tab and print the view the bot publishes (waiting for that view only, not for
        the queues: a run-command may be running)."""
        before = self.slack.home_views.get(self.user)
        self._check(self.slack.app_home_opened(user=self.user))
        deadline = time.monotonic() + timeout
        while self.slack.home_views.get(self.user) is before and time.monotonic() < deadline:
            time.sleep(0.05)
        view = self.slack.home_views.get(self.user)
        self.say(self.readable(render.plain(view["blocks"])) if view is not before else "(no Home view was published)")

    def _scenario(self, name: str | None) -> None:
        if self.sandbox is None:
            return self.say("(no sandbox behind this console)")
        if name is None:
            from sandbox.stack import scenarios

            listed = "\n".join(f"  {n:<22}{what}" for n, what in sorted(scenarios().items()))
            return self.say(f"(sandbox is in scenario {self.sandbox.scenario}; scenarios:)\n{listed}")
        try:
            self.sandbox.apply(name)
            self.say(f"(sandbox is now in scenario {name})")
        except ValueError as exc:
            self.say(f"(sandbox: {exc})")

    def _check(self, response) -> None:
        if response.status_code != 200:
            self.say(f"(the bot answered HTTP {response.status_code}: {response.text[:200]})")
