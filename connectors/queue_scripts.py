"""The queue's Redis side: its Lua scripts and the parsing of Redis' stream replies (RESP2, RESP3, redis-py's).

Each script touches the stream key only (see :mod:`connectors.queue` on why no command spans keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import ResponseError
from redis.typing import StreamEntry, XReadGroupResponse

# fail(), on the stream key only. Atomic, so a worker can only release a job it still holds: between a separate
# ownership check and the XCLAIM another worker could have reclaimed it after the visibility timeout. Returns the
# delivery count (-1: not held); on the last attempt it resets the idle time instead, keeping the job while it is
# dead-lettered. JUSTID: neither XCLAIM counts a delivery.
RELEASE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return -1 end
local delivered = p[1][4]
if delivered < tonumber(ARGV[5]) then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'IDLE', ARGV[4], 'JUSTID')
else
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
end
return delivered
"""


# keep(): the holder resets the job's idle time, so it is not reclaimed while a person is still deciding.
KEEP = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'IDLE', 0, 'JUSTID')
return 1
"""

# Acknowledge one entry and delete the lease consumer that held it: such a consumer never gets another entry.
ACK = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #p > 0 and string.find(p[1][2], ARGV[3], 1, true) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], p[1][2])
end
return acked
"""


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def text_fields(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}



def first_entry(reply: XReadGroupResponse) -> tuple[str, dict[str, str]] | None:
    """The first entry with data in an XREADGROUP reply: RESP2 ``[[key, entries]]``, RESP3 ``{key: [entries]}``
    or redis-py's unified ``{key: entries}``. Entries are tuples, batches lists."""
    values = list(reply.values()) if isinstance(reply, dict) else [entries for _, entries in reply]
    for value in values:
        batch = value[0] if value and isinstance(value[0], list) else value
        for entry in batch:
            entry_id, raw = entry[0], entry[1]  # a CLAIM reply adds two more items; this queue never asks for it
            if isinstance(entry_id, bytes | str) and isinstance(raw, dict):
                return text(entry_id), text_fields(raw)
    return None


def with_data(entry: StreamEntry) -> tuple[str, dict[str, str]] | None:
    """An XRANGE/XCLAIM entry's id and fields; None for an entry whose data was deleted while it was pending."""
    entry_id, raw = entry
    return None if entry_id is None or raw is None else (text(entry_id), text_fields(raw))



def is_nogroup(exc: ResponseError) -> bool:
    message = str(exc)  # from a script, Redis prefixes where it failed: "Error running script ...: NOGROUP ..."
    return message.startswith("NOGROUP") or ": NOGROUP " in message

