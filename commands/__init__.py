"""The bot's own commands, which are no runbook section: the incident and its history and export, the
queue, the watch and help. Declared as runbook items are (`bot.item`), discovered the same way."""
