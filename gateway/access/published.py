"""Password hashes that were ever published (gateway.example.toml, now and before): never accepted by serve.

A copied example must not become a working login: the old example gave three roles one hash of a password
printed next to it. Every hash in gateway.example.toml must be listed here (tests/test_senders_secrets.py
checks it), so `serve` refuses a configuration that still carries one.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import ConfigError, SenderSettings

PUBLISHED_HASHES = frozenset({
    # gateway.example.toml until issue 11: portal, commission-desk and operator alike ("portal-demo-password")
    "scrypt$16384$8$1$ocvpsgxX1ETfNl5ahtn4hQ==$VmZLKLkLfSFpWVXnhrnVgVarc1tsoFdY1DZDWIYuolo=",
    # gateway.example.toml since: placeholders of passwords nobody kept
    "scrypt$16384$8$1$pWnkf94urAo6P4Hi02y7hw==$QEOYOdWttJGpFeGPvbWaefbw5UEbQZpaxRle+PvNK0I=",
    "scrypt$16384$8$1$TBvxc2UJljOTErpfQ4qCMg==$SuwYFZaqwCj6Si2n0fRl47mvd0/XsEFWPZK/e76yzSI=",
    "scrypt$16384$8$1$Ojpe0MmSuJevl5TJ+qQnew==$hL0CwUtr0Cuy9vqjFXgd0wM7q8mjqj2bShGKv4nIGsY=",
})


def refuse_published_hashes(senders: Mapping[str, SenderSettings]) -> None:
    """Raise :class:`ConfigError` naming the first sender whose ``password_hash`` was published."""
    for sender_id, sender in senders.items():
        if sender.password_hash.strip() in PUBLISHED_HASHES:
            raise ConfigError(f"senders.{sender_id}.password_hash: this is a published example hash; make the "
                              "sender its own with `egov-gateway hash-password`")
