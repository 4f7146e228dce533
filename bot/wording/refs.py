"""Commands named in messages: `command("status")` gives `` `/nexy status` ``, a string that carries
its words, so the registry (given the modules that hold such constants) refuses to start if a
message recommends a command the parser refuses."""

from __future__ import annotations


class CommandRef(str):
    """`` `/nexy <words>` `` in backticks, carrying the command words it names (`.words`)."""

    words: str

    def __new__(cls, words: str) -> CommandRef:
        ref = super().__new__(cls, f"`/nexy {words}`")
        ref.words = words
        return ref

    def __getnewargs__(self) -> tuple[str]:
        return (self.words,)  # pickled and copied by its words, not its text


def command(words: str) -> CommandRef:
    """`/nexy <words>` in backticks; assign it at module level, where the registry finds it and checks it
    names a command the parser takes."""
    return CommandRef(words)
