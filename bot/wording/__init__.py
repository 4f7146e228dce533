"""The shared wording of the bot: one small module per part of the lifecycle.

Item reports render next to the check that produced them (in `runbook/`); what every item shares
lives here: `commands` (answers to a typed command), `incident` (the thread's parent), `plan` and
`approval` (a fix waiting for and getting its decision), `apply` (apply and verify), `vm` (the
run-command channel: queue, conflicts, scripts that did not finish) and `errors` (what failed).
Every `/nexy ...` a message recommends is named through `refs.command`, so the registry can check
at start-up that the parser accepts it.
"""
