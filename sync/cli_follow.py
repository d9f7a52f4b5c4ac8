"""`syncd follow REF` / `syncd unfollow REF`: mark a person whose new messages follow mode
relays. The mark is a flag on the person's record in each CRM, never a local list.

Standard library only: these are thin clients of the daemon and must answer at once.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sync.cli_rights import client_of, read_ref, targets_of

GOOD = ("following", "not-following")


def describe(name: str, answer: dict[str, Any]) -> str:
    """One line per CRM: `hubspot: following 123` · `pipedrive: absent (…)`."""
    outcome = answer["outcome"]
    if outcome in GOOD:
        return f"{name}: {outcome} {answer.get('id') or ''}".rstrip()
    return f"{name}: {outcome}: {answer.get('detail') or 'no detail'}"


def exit_code(answers: dict[str, dict[str, Any]]) -> int:
    """0 when every CRM was marked; 5 refused; 4 credentials; else 1."""
    bad = [a for a in answers.values() if a["outcome"] not in GOOD]
    if not bad:
        return 0
    if all(a["outcome"] == "refused" for a in bad):
        return 5
    if all(a.get("reason") == "auth" for a in bad):
        return 4
    return 1


def _run(args: argparse.Namespace, follow: bool) -> int:
    ref = read_ref(args)
    answer = client_of(args).call(
        "POST", "/v1/follow", {"ref": ref, "to": targets_of(args), "undo": not follow}
    )
    crms: dict[str, dict[str, Any]] = answer["crms"]
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        for name, result in crms.items():
            print(describe(name, result))
    return exit_code(crms)


def cmd_follow(args: argparse.Namespace) -> int:
    """Set the follow flag on the person's record in each CRM."""
    return _run(args, True)


def cmd_unfollow(args: argparse.Namespace) -> int:
    """Clear the follow flag: follow mode stops relaying this person's messages."""
    return _run(args, False)
