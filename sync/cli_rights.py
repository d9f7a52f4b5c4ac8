"""`syncd forget`, `block`, `unblock`, `export` and `cancel`: the data subject's rights (P6).

Standard library only: these are thin clients of the daemon and must answer at once.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from sync.control.client import ControlClient
from sync.errors import UsageError
from sync.paths import socket_path
from sync.refs import parse_ref

#: How long one call waits for a forget to finish before asking again.
POLL_SECONDS = 30.0
#: Outcomes of a forget that need nothing more from the user.
ERASED_OR_ABSENT = ("erased", "absent")
#: What `export` says the data is for and who receives it (the policies' subject-access duty).
PURPOSES = (
    "purpose: you chose to keep this person as a business contact in your CRMs; syncd relayed "
    "what the source showed you, and keeps nothing of it on this computer"
)


def read_ref(args: argparse.Namespace) -> str:
    """The REF argument, or the first line piped in (kept out of the shell's history)."""
    ref: str | None = args.ref
    if ref is None:
        if sys.stdin.isatty():
            raise UsageError("give a profile URL or publicId, or pipe it in on stdin")
        lines = [line.strip() for line in sys.stdin.read().splitlines()]
        refs = [line for line in lines if line and not line.startswith("#")]
        if len(refs) != 1:
            raise UsageError("pipe exactly one profile URL or publicId on stdin")
        ref = refs[0]
    parse_ref(ref)  # a bad ref is exit 2 before anything is sent
    return ref


def targets_of(args: argparse.Namespace) -> list[str] | None:
    return [n.strip() for n in args.to.split(",") if n.strip()] if args.to else None


def client_of(args: argparse.Namespace) -> ControlClient:
    return ControlClient(socket_path(args.config))


def _confirm(question: str, yes: bool) -> bool:
    """True to go on: ``--yes``, or a "y" typed on a terminal. Without a terminal and
    without ``--yes`` this is a usage error (as gh and terraform do)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("this erases data and there is no terminal to confirm on; add --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


# -- forget ------------------------------------------------------------------------------


def describe_forget(name: str, target: dict[str, Any]) -> str:
    """One output line per CRM: `pipedrive: erased 45 (purged by Pipedrive after 30 days)`."""
    outcome = target["outcome"]
    detail = target.get("detail") or ""
    if outcome == "erased":
        record = f" {target['id']}" if target.get("id") else ""
        return f"{name}: erased{record}" + (f" ({detail})" if detail else "")
    if outcome == "absent":
        return f"{name}: absent"
    return f"{name}: {outcome}: {detail or 'no detail'}"


def forget_exit_code(targets: dict[str, dict[str, Any]]) -> int:
    """0 when every CRM erased or had nobody; 4 when every failure was credentials; else 1."""
    bad = [t for t in targets.values() if t["outcome"] not in ERASED_OR_ABSENT]
    if not bad:
        return 0
    if all(t["outcome"] == "failed" and t.get("reason") == "auth" for t in bad):
        return 4
    return 1


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase the person in every CRM (after a confirmation), or `--undo` their block."""
    ref = read_ref(args)
    client = client_of(args)
    if args.undo:
        answer = client.forget(ref, None, undo=True)
        return _print_unblocked(args, answer)
    where = ", ".join(targets_of(args) or []) or "every CRM syncd writes to"
    question = (
        f"Erase {ref} from {where} and never sync them again? The CRM records and the "
        "activities syncd wrote are deleted"
    )
    if not _confirm(question, args.yes):
        print("nothing was erased")
        return 0
    answer = client.forget(ref, targets_of(args), wait=POLL_SECONDS)
    if answer.get("paused") and answer["state"] == "pending":
        print(
            "queued: syncd is paused; the forget runs on `syncd resume` "
            "(the person is on the do-not-sync list already)"
        )
        return 0
    targets = answer["crms"]
    if answer["state"] == "pending":
        selection = client.selection(answer["id"], wait=POLL_SECONDS)
        while selection["state"] == "pending":
            selection = client.selection(answer["id"], wait=POLL_SECONDS)
        targets = selection["targets"]
    if args.json:
        print(json.dumps({"ref": ref, "id": answer["id"], "crms": targets}, indent=2))
    else:
        for name, target in targets.items():
            print(describe_forget(name, target))
        print(f"{ref} is on the do-not-sync list; `syncd forget --undo {ref}` lifts it")
    return forget_exit_code(targets)


# -- block / unblock ---------------------------------------------------------------------


def _print_unblocked(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    ref = answer.get("ref", "")
    if getattr(args, "json", False):
        print(json.dumps(answer, indent=2))
    elif answer.get("removed"):
        print(f"{ref} is off the do-not-sync list; syncd may relay them again")
    else:
        print(f"{ref} was not on the do-not-sync list")
    return 0


def cmd_block(args: argparse.Namespace) -> int:
    """Put a person on the do-not-sync list without touching any CRM."""
    ref = read_ref(args)
    client_of(args).block(ref)
    print(
        f"{ref} is blocked: syncd will not read or relay them (the CRMs were not touched; "
        f"`syncd forget {ref}` also erases them there, `syncd unblock {ref}` lifts it)"
    )
    return 0


def cmd_unblock(args: argparse.Namespace) -> int:
    """Take a person off the do-not-sync list."""
    ref = read_ref(args)
    return _print_unblocked(args, client_of(args).block(ref, undo=True))


# -- export ------------------------------------------------------------------------------


def describe_export(name: str, answer: dict[str, Any]) -> list[str]:
    """What one CRM holds, as indented lines."""
    if answer.get("error"):
        return [f"{name}: failed: {answer['error']}"]
    if answer.get("candidates"):
        return [f"{name}: ambiguous {', '.join(answer['candidates'])}"]
    if not answer.get("found"):
        return [f"{name}: holds nothing about this person"]
    lines = [f"{name}: record {answer['id']}" + (f" {answer['url']}" if answer.get("url") else "")]
    for key, value in (answer.get("fields") or {}).items():
        lines.append(f"  {key}: {value}")
    activities = answer.get("activities") or {}
    count = int(activities.get("count") or 0)
    if count:
        dates = activities.get("dates") or []
        lines.append(f"  activities syncd wrote: {count} (from {dates[0]} to {dates[-1]})")
    else:
        lines.append("  activities syncd wrote: none")
    synced = answer.get("synced_at")
    lines.append(f"  last written by syncd: {synced or 'never (a record syncd did not write)'}")
    return lines


def cmd_export(args: argparse.Namespace) -> int:
    """Print what each CRM holds about a person (a subject-access copy); nothing is saved."""
    ref = read_ref(args)
    answer = client_of(args).export(ref, targets_of(args))
    crms: dict[str, dict[str, Any]] = answer["crms"]
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        source = answer.get("source") or {}
        if source:
            print(f"source: {source.get('type')} profile {source.get('profile_url')}")
        print(PURPOSES)
        print(f"recipients: {', '.join(crms)}")
        for name, held in crms.items():
            print("\n".join(describe_export(name, held)))
    failed = [a for a in crms.values() if a.get("error")]
    if not failed:
        return 0
    return 4 if all(a.get("reason") == "auth" for a in failed) else 1


# -- cancel ------------------------------------------------------------------------------


def cmd_cancel(args: argparse.Namespace) -> int:
    """Remove a queued selection before it is relayed."""
    if not re.fullmatch(r"sel_[0-9a-f]{16}", args.selection_id):
        raise UsageError(
            "a selection id looks like sel_0123456789abcdef (as `add-contact --no-wait` prints it)"
        )
    answer = client_of(args).cancel(args.selection_id)
    print(f"{answer['id']} cancelled: it left the queue and the journal; no CRM received it")
    return 0
