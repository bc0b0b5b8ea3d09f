"""Results handed to their senders, as message log records (kind ``result-delivery``).

Two ways out, both logged with the sender's messageId and the application's session id, so ``log show
--message-id`` lists them beside the request and its result:

- a ``getMessages`` answer (AsyncChannel): one record per result in it, in one append, before the answer is sent;
  the part ``answer`` is the HTTP body, whose bytes (with ``store_bodies``) are kept once, in the first record;
- a push to the sender's callback (``sendMessage`` of IAsyncChannelClient): one record once the sender took it
  (HTTP 200), the part ``callback`` the body posted. Refused or unreachable attempts are not records: the answer
  was not delivered, stays in the inbox and is logged when it is (the delivered push names its attempt).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.lifecycle.application import Application
from gateway.messagelog.records import Entry, Kind, sha256_hex

GET_MESSAGES = "getMessages"
"The note of a result handed over in a getMessages answer."


def handed_over(apps: Sequence[Application], body: bytes) -> list[Entry]:
    """The records of one getMessages answer (``body``: the HTTP body) holding ``apps``' results."""
    digest, count = sha256_hex(body), len(apps)
    return [Entry(Kind.RESULT_DELIVERY, app.sender_id, app.service_id, app.message_id, app.id,
                  {"answer": body} if index == 0 else {}, note=f"{GET_MESSAGES}, {index + 1} of {count}",
                  digests={} if index == 0 else {"answer": digest})
            for index, app in enumerate(apps)]


def pushed(app: Application, body: bytes, attempt: int) -> Entry:
    """The record of ``app``'s result taken by its sender's callback endpoint on push ``attempt`` (1: the first)."""
    return Entry(Kind.RESULT_DELIVERY, app.sender_id, app.service_id, app.message_id, app.id, {"callback": body},
                 note=f"callback, attempt {attempt}")
