"""The demo senders' passwords: random, made at the demo's first start, kept in ``<state>/demo-secrets.json``.

No password of the demo is published anywhere, so a copied configuration or a README line cannot open it;
the tools that act as a demo sender (``submit``, the portal's web site, the desk) read them from here
unless given ``--password`` or their environment variable.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEMO_SENDER = "portal"
DEMO_DESK = "commission-desk"
DEMO_OPERATOR = "operator"
DEMO_WSS_SENDER = "portal-wss"
"A demo sender that authenticates with WS-Security by the test PKI's portal system certificate (no password)."
DEMO_PULL_SENDER = "portal-pull"
"A demo portal without callbacks: its AsyncChannel answers wait in getMessages (a client pulling them)."
_PASSWORDS = (DEMO_SENDER, DEMO_DESK, DEMO_OPERATOR, DEMO_PULL_SENDER)
DEMO_SECRETS = "demo-secrets.json"
"The file under the state directory (mode 0600)."


@dataclass(frozen=True)
class DemoSecrets:
    """The demo senders' passwords: random, made once per state directory, so no published password opens it."""

    portal: str
    "The portal's (sender ``portal``): SHEP, REST and the cabinet."
    desk: str
    "The library commission's back-office desk (sender ``commission-desk``)."
    operator: str
    "The operator's (sender ``operator``): dead letters and replay."
    pull: str = ""
    "The pulling portal's (sender ``portal-pull``): answers by getMessages; empty in an older file until the demo runs."

    def of(self, sender_id: str) -> str | None:
        """The password of one of the demo's senders, by senderId."""
        return {DEMO_SENDER: self.portal, DEMO_DESK: self.desk, DEMO_OPERATOR: self.operator,
                DEMO_PULL_SENDER: self.pull or None}.get(sender_id)


def read_demo_secrets(state_dir: Path) -> DemoSecrets | None:
    """The demo's passwords from ``<state_dir>/demo-secrets.json``; None before the demo's first start."""
    path = state_dir / DEMO_SECRETS
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return DemoSecrets(portal=data[DEMO_SENDER], desk=data[DEMO_DESK], operator=data[DEMO_OPERATOR],
                       pull=data.get(DEMO_PULL_SENDER, ""))


def demo_secrets(state_dir: Path) -> DemoSecrets:
    """The demo's passwords, made at the first start in ``<state_dir>/demo-secrets.json`` (mode 0600).

    Security: secrets of the test world only, readable by the file's owner."""
    path = state_dir / DEMO_SECRETS
    if not path.exists():
        made = {sender: secrets.token_urlsafe(18) for sender in _PASSWORDS}
        state_dir.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two demos starting at once keep the first one's passwords
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(made, file, indent=2)
        except FileExistsError:
            pass
    _add_missing(path)
    made_or_kept = read_demo_secrets(state_dir)
    if made_or_kept is None:  # pragma: no cover - removed between writing and reading
        raise FileNotFoundError(path)
    return made_or_kept


def _add_missing(path: Path) -> None:
    """A state directory from before a sender was added: that sender's password is made now, the others kept."""
    kept = json.loads(path.read_text(encoding="utf-8"))
    missing = [sender for sender in _PASSWORDS if sender not in kept]
    if not missing:
        return
    kept.update({sender: secrets.token_urlsafe(18) for sender in missing})
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(kept, file, indent=2)
    os.replace(fresh, path)  # whole or not at all: a reader never sees half a file
