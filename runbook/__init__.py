"""The runbook, one module per item (`../shared/runbook/deploy-incident-runbook.md`).

Each module declares its command(s), section, help, arguments, route, scripts and symptoms
(`bot.item`), turns its script's facts into a typed report and renders that report. The
scripts sit beside the modules. The composition root (`nexy.registry`) imports every module and
builds the tables from them.
"""
