"""Write the command-line reference (docs/cli.md) from the CLI's own argparse parser.

Run ``python scripts/cli_reference.py > docs/cli.md`` after changing a command;
``tests/test_docs.py`` fails while the committed page differs from what this prints. The page
is built from the parser's actions rather than from ``format_help()``, whose layout changes
between Python versions and terminal widths.
"""

from __future__ import annotations

import argparse

from tokenguard.cli import build_parser

HEADER = """\
# Command-line reference

<!-- Written by `python scripts/cli_reference.py > docs/cli.md` from the parser in
tokenguard/cli.py; do not edit by hand. -->

`pip install tokenguard` installs a `tokenguard` command (also `python -m tokenguard`). It works
on the same store as your app: the SQLite file of `DB_FILENAME` (or `--db FILE`, accepted before
or after the command), or, with `DB_CLIENT=pg`, the PostgreSQL database (prepare it with
`tokenguard db migrate`). Passwords are never accepted as arguments (they would end up in shell
history and `ps`): use `--password-stdin` or `--password-prompt`. Exit status: 0 ok, 1 failed
(e.g. no such user), 2 usage error. `set-role`, `set-password`, `suspend`, `revoke-sessions` and
`tfa disable` void the user's access tokens issued before them (`revoke-session`: those of the
session) in every running server sharing the session store: Redis, PostgreSQL or the SQLite
file ([revocation](security/revocation.md)). With an audit store (`TOKENGUARD_AUDIT_STORE`
`sqlite`, `redis` or `pg`), the commands that change a user's access or credentials or end its
sessions record a `user_change` event, user agent `tokenguard-cli`
([audit](security/audit.md#changes-to-a-user)).

```bash
tokenguard secret                                   # a strong SECRET
echo "$PW" | tokenguard users create ada@example.com --role editor --password-stdin
tokenguard users create root@example.com --admin --password-prompt
tokenguard users list --json                        # never shows hashes
tokenguard users set-role ada@example.com reviewer --no-admin
tokenguard users suspend ada@example.com            # also logs her out everywhere
tokenguard users sessions ada@example.com           # her live sessions, with their ids
tokenguard users revoke-session ada@example.com ID  # log her out of one of them
TOKEN=$(tokenguard tokens set robot@example.com)    # printed once; only its hash is stored
tokenguard tokens rotate robot@example.com          # the old token stops working at once
tokenguard audit list --limit 20 --event login      # the audit trail
tokenguard db migrate                               # DB_CLIENT=pg: create/update the tables
```
"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the order they were declared."""
    found: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, helps.get(name, ""), sub))
    return found


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            names += f" `{action.metavar or action.dest.upper()}`"
    else:
        names = f"`{action.metavar or action.dest}`"
    text = action.help or ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        text += ("; " if text else "") + "one of " + ", ".join(f"`{c}`" for c in action.choices)
    if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
        text += f" (default `{action.default}`)"
    return f"| {names} | {text} |"


def _section(prog: str, helptext: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `{prog}`", ""]
    if helptext:
        lines += [helptext[0].upper() + helptext[1:].rstrip(".") + ".", ""]
    rows = [
        _argument(a)
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        and a.help != argparse.SUPPRESS  # hidden on purpose (e.g. a password argument refused)
    ]
    if rows:
        lines += ["| argument | meaning |", "| --- | --- |", *rows, ""]
    for name, sub_help, sub in _subcommands(parser):
        lines += _section(f"{prog} {name}", sub_help, sub)
    return lines


def cli_markdown() -> str:
    """The whole page, as committed in docs/cli.md."""
    parser = build_parser()
    body = _section("tokenguard", parser.description or "", parser)
    return HEADER + "\n" + "\n".join(body).rstrip() + "\n"


if __name__ == "__main__":
    print(cli_markdown(), end="")
