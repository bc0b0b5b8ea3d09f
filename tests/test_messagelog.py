"""The message log: records appended for real requests, sealed (gateway signature + RFC 3161 timestamp from the
mock TSA over a socket) by count and by time, archived; `log verify` finds an edited byte, a deleted record and
two records swapped; intake refuses when sealing has failed too long and recovers when the TSA returns."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from redis.asyncio import Redis

from gateway.config import ConfigError, MessageLogSettings, settings_from_dict
from gateway.config.loading import check_settings
from gateway.messagelog import tsp
from gateway.messagelog.archive import segment_files
from gateway.messagelog.journal import LogKeys, MessageLog
from gateway.messagelog.records import BodyCipher, Entry, Kind, RecordError, make_record
from gateway.messagelog.sealer import Sealer, SealError
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.signer import SigningKey, load_pem_signing_key
from signing.trust import TrustStore
from tests.helpers import (
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    LoggedGateway,
    async_envelope_bytes,
    cli_args,
    logged_gateway,
    message_id,
    run_cli,
    wait_for,
)


async def test_requests_are_logged_sealed_and_verified(gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa: str,
                                                       http: aiohttp.ClientSession,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Sealed by count only here (segments of exactly four records); sealing by time: the next test.
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa, segment_seconds=60)
    try:
        mids = [message_id() for _ in range(3)]
        for mid, person in zip(mids, ("aigerim", "saule", "daniyar"), strict=True):
            status, body, _ = await logged.post(http, person, mid, gw.pki)
            assert status == 200, body
        async with http.get(f"{logged.url}/api/v1/cabinet/{gw.pki.person('saule').iin}/applications",
                            headers={"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}) as response:
            assert response.status == 200
        # 3 x (request, receipt, provider answer, result, answer) + 1 cabinet read = 16: four segments of four.
        await wait_for(lambda: _files(logged.archive, 4))
        await wait_for(lambda: _none_left(logged))
        status, body, _ = await logged.post(http, "aigerim", None, gw.pki)
        assert status == 200, body
        await wait_for(lambda: _files(logged.archive, 5))  # 5 records: one segment, one left waiting
        health = await logged.health(http)
        assert health["onTime"] and health["lastSealAgeSeconds"] is not None
        assert await logged.unsealed() == 1
    finally:
        await runner.cleanup()

    records = [json.loads(line) for path in segment_files(logged.archive)
               for line in path.read_bytes().splitlines()[:-1]]
    assert [r["seq"] for r in records] == list(range(1, 21))
    first = [r for r in records if r["messageId"] == mids[0]]
    assert [r["kind"] for r in first] == ["request", "receipt", "provider-answer", "result", "answer"]
    assert all(len(digest) == 64 for r in first for digest in r["parts"].values())
    read = next(r for r in records if r["kind"] == "cabinet-read")
    assert gw.pki.person("saule").iin not in json.dumps(read)  # the owner only masked
    assert "list of" in read["note"]
    assert "bodies" not in first[0]

    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged))
    assert code == 0, out
    assert "5 segment(s), 20 record(s)" in out and "live tail in Redis: 1 unsealed record(s), up to record 21" in out
    assert "OK" in out
    code, out = await run_cli(capsys, "log", "verify", "--from", "2999-01-01", *cli_args(gw, logged))
    assert code == 0 and "0 segment(s), 0 record(s) checked, 5 outside --from/--to" in out, out
    code, out = await run_cli(capsys, "log", "verify", "--to", "2000-01-01T00:00:00", *cli_args(gw, logged))
    assert code == 0 and "1 segment(s), 4 record(s) checked, 4 outside --from/--to" in out, out
    code, out = await run_cli(capsys, "log", "verify", "--from", "yesterday", *cli_args(gw, logged))
    assert code == 2
    code, out = await run_cli(capsys, "log", "show", "--message-id", mids[0], *cli_args(gw, logged))
    assert code == 0, out
    for kind in ("request", "receipt", "provider-answer", "result", "answer"):
        assert f"  {kind}  sender={PORTAL}" in out
    assert "timestamped by C=KZ,CN=TIMESTAMP AUTHORITY (tsa) TEST" in out and "sealed in segment-0000000" in out
    code, out = await run_cli(capsys, "log", "show", "--message-id", "no-such-id", *cli_args(gw, logged))
    assert code == 1 and "nothing logged" in out

    await _tamper_and_check(tmp_path, logged, gw, capsys)


async def _files(archive: Path, count: int) -> bool:
    return len(segment_files(archive)) >= count


async def _none_left(logged: LoggedGateway) -> bool:
    return await logged.unsealed() == 0


async def _tamper_and_check(tmp_path: Path, logged: LoggedGateway, gw: GatewayUnderTest,
                      capsys: pytest.CaptureFixture[str]) -> None:
    """One byte changed, one record deleted, two records swapped: each is found, named by file and record."""

    def copy(name: str) -> tuple[Path, list[bytes]]:
        target = tmp_path / name
        shutil.copytree(logged.archive, target)
        return target, (target / "segment-00000002.jsonl").read_bytes().splitlines()

    def write(archive: Path, lines: list[bytes]) -> None:
        (archive / "segment-00000002.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    # Segment 2 holds records 5..8 on lines 1..4, its seal on line 5.
    edited, lines = copy("edited")
    at = lines[1].index(b'"parts":{') + 20  # inside a SHA-256 in record 6
    lines[1] = lines[1][:at] + (b"0" if lines[1][at:at + 1] != b"0" else b"1") + lines[1][at + 1:]
    write(edited, lines)
    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged, edited))
    assert code == 1, out
    assert "first break at segment-00000002.jsonl line 3 record 7: its prev does not match" in out
    assert "record 6 changed" in out

    deleted, lines = copy("deleted")
    del lines[2]  # record 7
    write(deleted, lines)
    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged, deleted))
    assert code == 1, out
    assert "first break at segment-00000002.jsonl line 3 record 8: record 7 missing before it" in out

    swapped, lines = copy("swapped")
    lines[0], lines[1] = lines[1], lines[0]  # records 5 and 6
    write(swapped, lines)
    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged, swapped))
    assert code == 1, out
    assert "first break at segment-00000002.jsonl line 1 record 5: records reordered: line 1 holds record 6, " \
           "line 2 holds record 5" in out

    last, lines = copy("last-record")
    lines[3] = lines[3].replace(b'"kind":"', b'"kind":"x', 1)  # record 8, the segment's last: only the seal names it
    write(last, lines)
    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged, last))
    assert code == 1 and "its head is not the SHA-256 of the last record (record 8 changed?)" in out, out


async def test_sealing_failing_too_long_refuses_intake_until_the_tsa_returns(
        gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa: str, http: aiohttp.ClientSession) -> None:
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa, segment_records=1000)
    try:
        await http.post(f"{tsa}/_control/tsa", json={"down": True})
        status, body, _ = await logged.post(http, "aigerim", None, gw.pki)
        assert status == 200, body  # logged, waiting for its seal

        async def failing() -> dict[str, Any] | None:
            health = await logged.health(http)
            return health if health["failingSince"] else None

        health = await wait_for(failing)
        assert health["unsealedRecords"] == 5
        late = await wait_for(lambda: _late(logged, http))
        assert "unsealed for too long" in late["reason"]
        status, body, retry_after = await logged.post(http, "saule", None, gw.pki)
        assert (status, body["code"]) == (503, "GATEWAY_MESSAGELOG_UNSEALED"), body
        assert int(retry_after) >= 1
        assert await logged.unsealed() == 5  # the refused request left no record

        await http.post(f"{tsa}/_control/tsa", json={})
        await wait_for(lambda: _none_left(logged))
        await wait_for(lambda: _on_time(logged, http))
        status, body, _ = await logged.post(http, "saule", None, gw.pki)
        assert status == 200, body
    finally:
        await runner.cleanup()
    # Sealed by time (segment_records is 1000): the first request's five records in the first segment.
    first = segment_files(logged.archive)[0].read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in first[:-1]] == [1, 2, 3, 4, 5]


async def _late(logged: LoggedGateway, http: aiohttp.ClientSession) -> dict[str, Any] | None:
    health = await logged.health(http)
    return None if health["onTime"] else health


async def _on_time(logged: LoggedGateway, http: aiohttp.ClientSession) -> bool:
    health = await logged.health(http)
    return bool(health["onTime"] and health["failingSince"] is None)


@pytest.mark.parametrize(("fault", "reason"), [
    ({"nonce": "wrong"}, "the token's nonce is not the one sent"),
    ({"imprint": "wrong"}, "the token's message imprint is not SHA-256 of what was stamped"),
    ({"signer": "foreign"}, "the TSA's certificate is not trusted"),
    ({"signer": "no-eku"}, "no id-kp-timeStamping EKU"),
])
async def test_a_bad_timestamp_is_refused(gw: GatewayUnderTest, tsa: str, http: aiohttp.ClientSession,
                                          fault: dict[str, str], reason: str) -> None:
    trust = TrustStore.from_files(gw.pki.trust_anchors, gw.pki.intermediates)
    digest = tsp.digest_of(b"a head hash")
    query, nonce = tsp.request_for(digest)

    async def ask() -> bytes:
        async with http.post(f"{tsa}/tsa", data=query, headers={"Content-Type": tsp.CONTENT_TYPE_QUERY}) as answer:
            assert answer.status == 200
            return await answer.read()

    stamp = tsp.check_response(await ask(), digest, nonce, trust)  # the good one first
    assert stamp.tsa == "C=KZ,CN=TIMESTAMP AUTHORITY (tsa) TEST"
    assert tsp.verify_token(stamp.token, digest, trust).serial == stamp.serial
    with pytest.raises(tsp.TimestampError, match="message imprint"):
        tsp.verify_token(stamp.token, tsp.digest_of(b"another head"), trust)
    await http.post(f"{tsa}/_control/tsa", json=fault)
    with pytest.raises(tsp.TimestampError) as refused:
        tsp.check_response(await ask(), digest, nonce, trust)
    assert reason in str(refused.value)


def test_a_changed_token_is_refused(pki: Any) -> None:
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    with pytest.raises(tsp.TimestampError, match=r"not a TimeStampResp|cannot be read"):
        tsp.check_response(b"\x30\x03\x02\x01\x00", b"0" * 32, 1, trust)


def test_bodies_are_encrypted_at_rest_and_open_only_with_their_key() -> None:
    key = os.urandom(32)
    cipher = BodyCipher.from_base64(base64.b64encode(key).decode())
    body = b"<doc>secret 900101300123</doc>"
    entry = Entry(Kind.REQUEST, PORTAL, READER_TICKET_SERVICE, "m-1", "{s}", {"request": body})
    record = make_record(entry, cipher)
    digest, sealed = record["parts"]["request"], record["bodies"]["request"]
    assert b"secret" not in base64.b64decode(sealed)
    assert cipher.open(sealed, digest) == body
    with pytest.raises(RecordError, match="does not open"):
        BodyCipher(os.urandom(32)).open(sealed, digest)
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    with pytest.raises(RecordError, match="does not open"):
        cipher.open(base64.b64encode(bytes(raw)).decode(), digest)
    with pytest.raises(RecordError, match="does not open"):  # moved to another record's digest
        cipher.open(sealed, "0" * 64)
    assert "bodies" not in make_record(entry, None)


async def test_appends_from_several_processes_get_dense_ordered_numbers(redis: Redis, prefix: str) -> None:
    settings = MessageLogSettings(enabled=True, tsa_url="http://127.0.0.1:9/tsa")
    workers = [MessageLog(redis, prefix, settings) for _ in range(4)]

    async def append(index: int) -> int:
        entry = Entry(Kind.CABINET_READ, PORTAL, "", "", "", {}, note=f"n{index}")
        return await workers[index % 4].append(entry, entry)

    lasts = await asyncio.gather(*(append(i) for i in range(100)))
    assert sorted(lasts) == list(range(2, 201, 2))
    keys = LogKeys.under(prefix)
    assert sorted(int(k) for k in await redis.hkeys(keys.records)) == list(range(1, 201))
    assert await redis.get(keys.pending_since)


def test_settings_require_a_tsa_when_enabled() -> None:
    with pytest.raises(ConfigError, match=r"messagelog\.tsa_url"):
        check_settings(settings_from_dict({"messagelog": {"enabled": True}}))
    with pytest.raises(ConfigError, match=r"messagelog\.segment_seconds"):
        check_settings(settings_from_dict({"messagelog": {"segment_seconds": 0}}))


def _sealer(gw: GatewayUnderTest, redis: Redis, prefix: str, settings: MessageLogSettings, archive: Path,
            http: aiohttp.ClientSession) -> Sealer:
    keys = gw.pki.systems["gateway"]
    return Sealer(redis, prefix, settings, key=SigningKey.from_pem(keys.cert, keys.key),
                  trust=TrustStore.from_files(gw.pki.trust_anchors, gw.pki.intermediates), session=http,
                  archive_dir=archive)


async def test_a_deleted_waiting_record_stops_sealing_and_verify_names_it(
        gw: GatewayUnderTest, redis: Redis, prefix: str, tsa: str, tmp_path: Path, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = MessageLogSettings(enabled=True, tsa_url=f"{tsa}/tsa", segment_records=2, segment_seconds=60)
    log, keys = MessageLog(redis, prefix, settings), LogKeys.under(prefix)
    entry = Entry(Kind.CABINET_READ, PORTAL, "", "", "", {}, note="list of 9001********")
    await log.append(entry, entry, entry, entry, entry)
    sealer = _sealer(gw, redis, prefix, settings, tmp_path / "archive", http)
    assert await sealer.seal_if_due()  # records 1..2
    await redis.hdel(keys.records, "4")
    with pytest.raises(SealError, match="record 4 is missing from Redis"):
        await sealer.seal_if_due()
    assert await redis.get(keys.failing_since)
    assert await redis.hlen(keys.records) == 2  # nothing sealed over the gap
    code, out = await run_cli(capsys, "log", "verify", str(tmp_path / "archive"), "--state-dir",
                              str(gw.settings.state_dir), "--redis-url", gw.redis_url, "--key-prefix", prefix)
    assert code == 1, out
    assert "first break at redis record 4: 1 unsealed record(s) missing from Redis" in out


async def test_a_segment_written_before_a_crash_is_adopted_not_sealed_twice(
        gw: GatewayUnderTest, redis: Redis, prefix: str, tsa: str, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    settings = MessageLogSettings(enabled=True, tsa_url=f"{tsa}/tsa", segment_records=3, segment_seconds=60)
    log, keys = MessageLog(redis, prefix, settings), LogKeys.under(prefix)
    entry = Entry(Kind.CABINET_READ, PORTAL, "", "", "", {}, note="read")
    await log.append(entry, entry, entry)
    before = {k: v for k, v in (await redis.hgetall(keys.records)).items()}
    sealer = _sealer(gw, redis, prefix, settings, tmp_path / "archive", http)
    assert await sealer.seal_if_due()
    # The state a sealer leaves when it dies after writing the file, before recording the seal in Redis:
    await redis.delete(keys.sealed)
    await redis.hset(keys.records, mapping=before)
    stamps = (await (await http.get(f"{tsa}/_control/tsa")).json())["stamps"]
    assert await sealer.seal_if_due()
    assert (await (await http.get(f"{tsa}/_control/tsa")).json())["stamps"] == stamps  # not stamped again
    assert len(segment_files(tmp_path / "archive")) == 1
    assert await redis.hlen(keys.records) == 0 and (await sealer.state()).seq == 3


async def test_an_async_channel_message_is_logged_through_to_its_result(
        gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa: str, http: aiohttp.ClientSession) -> None:
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa, segment_records=1000, segment_seconds=60)
    try:
        body = async_envelope_bytes(signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE))
        mid = etree.fromstring(body).findtext(".//messageId")
        async with http.post(f"{logged.url}/shep/async", data=body,
                             headers={"Content-Type": "text/xml; charset=utf-8"}) as response:
            answer = await response.read()
        assert response.status == 200, answer

        async def kinds() -> list[str] | None:
            stored = [json.loads(v) for _, v in sorted((int(k), v) for k, v in
                                                       (await gw.redis.hgetall(logged.keys.records)).items())]
            found = [r["kind"] for r in stored if r["messageId"] == mid]
            return found if "result" in found else None

        found = await wait_for(kinds)
    finally:
        await runner.cleanup()
    assert found[:3] == ["request", "receipt", "answer"] and found[3:] == ["provider-answer", "result"]
    stored = [json.loads(v) for v in (await gw.redis.hgetall(logged.keys.records)).values()]
    request = next(r for r in stored if r["messageId"] == mid and r["kind"] == "request")
    answered = next(r for r in stored if r["messageId"] == mid and r["kind"] == "answer")
    assert request["parts"]["request"] == hashlib.sha256(body).hexdigest()  # the body as received
    assert answered["parts"]["answer"] == hashlib.sha256(answer).hexdigest()  # the bytes sent
    assert request["note"] == "soap-async"


async def test_a_gateway_with_a_gost_key_seals_with_gost_and_verify_checks_it(
        gw: GatewayUnderTest, redis: Redis, prefix: str, tsa: str, tmp_path: Path, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = MessageLogSettings(enabled=True, tsa_url=f"{tsa}/tsa", segment_records=2, segment_seconds=60)
    log, archive = MessageLog(redis, prefix, settings), tmp_path / "archive"
    entry = Entry(Kind.CABINET_READ, PORTAL, "", "", "", {}, note="read")
    await log.append(entry, entry)
    keys = gw.pki.gost_systems["gateway"]
    sealer = Sealer(redis, prefix, settings, key=load_pem_signing_key(keys.cert, keys.key),
                    trust=TrustStore.from_files(gw.pki.trust_anchors, gw.pki.intermediates), session=http,
                    archive_dir=archive)
    assert await sealer.seal_if_due()
    (segment,) = segment_files(archive)
    seal = json.loads(segment.read_bytes().splitlines()[-1])
    assert seal["algorithm"] == "gost2015-512-streebog512"
    args = ("log", "verify", str(archive), "--state-dir", str(gw.settings.state_dir), "--no-redis")
    code, out = await run_cli(capsys, *args)
    assert code == 0, out
    signature = bytearray(base64.b64decode(seal["signature"]))
    signature[0] ^= 1  # one bit of the GOST signature: the seal no longer holds
    seal["signature"] = base64.b64encode(bytes(signature)).decode()
    lines = [*segment.read_bytes().splitlines()[:-1], json.dumps(seal).encode()]
    segment.write_bytes(b"\n".join(lines) + b"\n")
    code, out = await run_cli(capsys, *args)
    assert code == 1 and "the gateway's signature does not hold" in out, out
