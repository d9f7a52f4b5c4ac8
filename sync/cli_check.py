"""`syncd check REF`: is this person already in each CRM? Nothing is written anywhere.

Standard library only: this is one of the commands that must answer at once.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sync.control.client import ControlClient
from sync.paths import socket_path
from sync.refs import parse_ref


def describe(name: str, answer: dict[str, Any]) -> str:
    """One output line for one CRM: `hubspot: found 123 (owner 7) https://…`."""
    if answer.get("refused"):
        return f"{name}: refused: {answer['refused']}"
    if answer.get("error"):
        return f"{name}: failed: {answer['error']}"
    if answer.get("candidates"):
        return f"{name}: ambiguous {', '.join(answer['candidates'])} (by {answer.get('step')})"
    if not answer.get("found"):
        return f"{name}: not found"
    owner = f" (owner {answer['owner']})" if answer.get("owner") else " (no owner)"
    url = f" {answer['url']}" if answer.get("url") else ""
    return f"{name}: found {answer['id']}{owner}{url}"


def exit_code(answers: dict[str, dict[str, Any]]) -> int:
    """0 when every CRM answered (found or not); 5 refused; 4 credentials; else 1."""
    bad = [a for a in answers.values() if a.get("refused") or a.get("error") or a.get("candidates")]
    if not bad:
        return 0
    if all(a.get("refused") for a in bad):
        return 5
    if all(a.get("reason") == "auth" for a in bad):
        return 4
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    """Ask the daemon, print one line per CRM (or the JSON answer), return the exit code."""
    parse_ref(args.ref)  # a bad ref is exit 2 before anything is sent
    to = [n.strip() for n in args.to.split(",") if n.strip()] if args.to else None
    answer = ControlClient(socket_path(args.config)).check(args.ref, to)
    crms: dict[str, dict[str, Any]] = answer["crms"]
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        for name, result in crms.items():
            print(describe(name, result))
    return exit_code(crms)
