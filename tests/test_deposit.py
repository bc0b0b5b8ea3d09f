"""Software deposit (rules No. 146/НҚ): the package uploaded, the application with the act's tables signed and
sent through the real gateway, the package streamed to the operator mock, and its signed act or reasoned refusal
in the cabinet, for every ground of §16; the package check at intake; `deposit pack` on the project's own code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree

from gateway.shell.serve import start_site
from gateway.uploads.client import upload_package
from mocks.deposit import create_deposit_app
from mocks.deposit.app import OPERATOR
from mocks.deposit.medium import MediumUnreadable, compare, read_medium
from mocks.deposit.pack import Tables, pack, scan, write_archive
from mocks.portal.applicant import signer_for
from mocks.portal.shep_client import SyncChannelClient
from mocks.world.commands import deposit as deposit_command
from mocks.world.demo import deposit_service
from mocks.world.deposit import DEPOSIT_SERVICE, deposit_application, file_sha256
from signing.xmlsafe import XmlLimits, parse_untrusted
from tests.helpers import (
    ARTIFACTS,
    CLI,
    PORTAL,
    PORTAL_B,
    PORTAL_B_PASSWORD,
    PORTAL_PASSWORD,
    ROOT,
    GatewayUnderTest,
    cabinet_item,
    free_port,
    second_gateway,
    system_signer,
)

SOFTWARE_CODE = "TEST-IS-042"
SIGNING_DIR = Path(__file__).resolve().parent.parent / "signing"


@dataclass
class DepositWorld:
    """A gateway with the deposit service in front of the operator mock."""

    url: str
    system: GatewayUnderTest
    operator: web.Application
    operator_url: str
    shep: SyncChannelClient

    @property
    def stats(self) -> dict[str, int]:
        state = self.operator[OPERATOR]
        return {"requests": state.requests, "packages": state.packages}


@pytest_asyncio.fixture
async def world(system: GatewayUnderTest, tmp_path: Path) -> AsyncIterator[DepositWorld]:
    operator = create_deposit_app(storage=tmp_path / "operator", signer=_signer(system), pace=1e9,
                                  software={SOFTWARE_CODE: "test system"})
    port = free_port()
    operator_runner = await start_site(operator, "127.0.0.1", port)
    service = deposit_service(f"http://127.0.0.1:{port}", provider_bin=system.pki.system_bins["operator"],
                              poll_seconds=0.1)
    services = {**system.settings.services, DEPOSIT_SERVICE: service}
    limits = replace(system.settings.limits, max_body_bytes=4 * 1024 * 1024)
    # Its own key prefix: the session gateway's delivery loops (which do not know the service) never see its outbox.
    redis = replace(system.settings.redis, key_prefix=f"deposit-{tmp_path.name}")
    runner, url = await second_gateway(system, tmp_path / "gateway", services=services, limits=limits, redis=redis)
    try:
        shep = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
        yield DepositWorld(url, system, operator, f"http://127.0.0.1:{port}", shep)
    finally:
        await runner.cleanup()
        await operator_runner.cleanup()


def _signer(system: GatewayUnderTest) -> Any:
    return system_signer(system.pki, "operator")


async def _upload(world: DepositWorld, path: Path, sender: str = PORTAL, password: str = PORTAL_PASSWORD) -> str:
    async with aiohttp.ClientSession() as session:
        return await upload_package(session, world.url, aiohttp.encode_basic_auth(sender, password), path)


async def _apply(world: DepositWorld, package: Path, tables: Tables, *, code: str = SOFTWARE_CODE,
                 person: str = "kitap-head") -> tuple[Any, str]:
    import uuid

    who = world.system.pki.person(person)
    document = signer_for(who).sign(deposit_application(who, package, tables=tables, architecture_code=code))
    mid = str(uuid.uuid4())
    result = await asyncio.to_thread(lambda: world.shep.send(
        service_id=DEPOSIT_SERVICE, sender_id=PORTAL, password=PORTAL_PASSWORD, document=document, message_id=mid))
    return result, mid


async def _final(world: DepositWorld, mid: str, person: str = "kitap-head") -> dict[str, Any]:
    owner = world.system.pki.person(person).bin or ""
    async with aiohttp.ClientSession() as http:  # this gateway's cabinet: it knows the service's deadline
        return await cabinet_item(replace(world.system, url=world.url), http, owner, mid, seconds=60)


def _result(item: dict[str, Any]) -> etree._Element:
    return parse_untrusted(item["result"].encode(), XmlLimits(max_bytes=64 * 1024 * 1024))


def _text(root: etree._Element, path: str) -> list[str]:
    return [str(t) for t in root.xpath(path + "/text()", namespaces={"r": "urn:egov:deposit:result:v1"})]


def _tree(tmp_path: Path, *, big: int = 0) -> Path:
    """A small software tree (the project's signing/ code plus, when asked, a ``big``-byte data file)."""
    root = tmp_path / "software"
    shutil.copytree(SIGNING_DIR, root / "signing", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "requirements.txt").write_text("lxml>=5.0\ncryptography==43.0.1\n", encoding="utf-8")
    if big:  # the "database file" of §5 4): incompressible, so the archive is as large
        (root / "data").mkdir()
        with (root / "data" / "database.bin").open("wb") as out:
            for _ in range(big // (1 << 20)):
                out.write(os.urandom(1 << 20))
    return root


# ------------------------------------------------------------------------------------------------ pack


def test_pack_of_the_projects_signing_folder_matches_it(tmp_path: Path) -> None:
    out = tmp_path / "signing.tar.gz"
    assert deposit_command(["pack", str(SIGNING_DIR), "--name", "egov-signing", "--version", "1.0",
                            "--out", str(out)]) == 0
    tables = Tables.from_json(json.loads((tmp_path / "signing.tar.gz.tables.json").read_text(encoding="utf-8")))
    on_disk = sorted(p for p in SIGNING_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert [row.path for row in tables.source_files] == [p.relative_to(SIGNING_DIR).as_posix() for p in on_disk]
    for row, path in zip(tables.source_files, on_disk, strict=True):
        assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.size_bytes == path.stat().st_size
        assert row.disk_label == "egov-signing 1.0"
        assert row.language == ("Python" if path.suffix == ".py" else row.language)
    assert compare(tables, read_medium(out)) == []
    assert scan(SIGNING_DIR, name="egov-signing", version="1.0") == tables


def test_libraries_come_from_the_manifest_files(tmp_path: Path) -> None:
    root = tmp_path / "app"
    (root / "web").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["aiohttp>=3.9,<4", "lxml"]\n')
    (root / "web" / "package.json").write_text(json.dumps({"dependencies": {"react": "^18.2.0"}}))
    (root / "go.mod").write_text("module x\n\nrequire (\n\tgithub.com/pkg/errors v0.9.1\n)\n")
    (root / "pom.xml").write_text("<project><dependencies><dependency><groupId>org.x</groupId>"
                                  "<artifactId>y</artifactId><version>2.1</version></dependency>"
                                  "</dependencies></project>")
    libraries = {(lib.name, lib.version, lib.language, lib.declared_in)
                 for lib in scan(root, name="x", version="1").libraries}
    assert libraries == {("aiohttp", ">=3.9,<4", "Python", "pyproject.toml"),
                         ("lxml", "any", "Python", "pyproject.toml"),
                         ("react", "^18.2.0", "JavaScript", "web/package.json"),
                         ("github.com/pkg/errors", "v0.9.1", "Go", "go.mod"), ("org.x:y", "2.1", "Java", "pom.xml")}


def test_a_corrupt_archive_is_unreadable(tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    pack(SIGNING_DIR, good, name="s", version="1")
    bad = tmp_path / "bad.tar.gz"
    data = bytearray(good.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    bad.write_bytes(bytes(data))
    with pytest.raises(MediumUnreadable):
        read_medium(bad)


# ------------------------------------------------------------------------------------------ end to end


async def test_a_deposit_ends_with_the_signed_act_whose_tables_match(world: DepositWorld, tmp_path: Path) -> None:
    root = _tree(tmp_path, big=24 << 20)
    package = tmp_path / "software.tar.gz"
    tables = pack(root, package, name="test-system", version="2.3")
    assert package.stat().st_size > 20 << 20
    await _upload(world, package)
    result, mid = await _apply(world, package, tables)
    assert result.ok, result.error_data
    item = await _final(world, mid)
    assert item["status"] == "completed", item
    steps = [event.get("step") for event in item["history"] if event.get("step")]
    assert steps == ["application-registered", "repository-formed", "deposit-taken", "act-checked", "signed"]
    answer = _result(item)
    assert _text(answer, "r:outcome") == ["accepted"]
    assert _text(answer, "r:act/r:tables/r:sourceFiles/r:file/r:sha256") == [row.sha256 for row in tables.source_files]
    assert _text(answer, "r:act/r:tables/r:libraries/r:library/r:name") == ["lxml", "cryptography"]
    assert _text(answer, "r:agreement/r:copies") == ["2"] and _text(answer, "r:act/r:copies") == ["2"]
    assert _text(answer, "r:act/r:packageInfo/r:sha256") == [file_sha256(package)]
    stored = world.operator[OPERATOR].storage / f"{_text(answer, 'r:registerEntry/r:applicationNumber')[0]}.tar.gz"
    assert file_sha256(stored) == file_sha256(package)
    assert item["deadline"] and item["overdue"] is False  # 11 working days and 10 minutes (§8, §9, §15, §17)


async def test_software_not_in_the_register_is_refused(world: DepositWorld, tmp_path: Path) -> None:
    package = tmp_path / "s.tar.gz"
    tables = pack(SIGNING_DIR, package, name="s", version="1")
    await _upload(world, package)
    result, mid = await _apply(world, package, tables, code="NOT-REGISTERED-1")
    assert result.ok, result.error_data
    item = await _final(world, mid)
    assert item["status"] == "refused"
    answer = _result(item)
    assert _text(answer, "r:refusal/r:ground") == ["not-in-register"]
    assert _text(answer, "r:refusal/r:legalBasis") == ["§16 1)"]
    assert world.stats["packages"] == 0  # refused before the repository: the medium is not taken


async def test_a_file_changed_after_the_act_was_made_is_named(world: DepositWorld, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    tables = scan(root, name="s", version="1")
    changed = root / "signing" / "signer.py"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# changed after packing\n", encoding="utf-8")
    package = tmp_path / "s.tar.gz"
    write_archive(root, package)
    await _upload(world, package)
    result, mid = await _apply(world, package, tables)
    assert result.ok, result.error_data
    item = await _final(world, mid)
    assert item["status"] == "refused"
    answer = _result(item)
    assert _text(answer, "r:refusal/r:ground") == ["act-mismatch"]
    row = next(r for r in tables.source_files if r.path == "signing/signer.py")
    assert _text(answer, "r:refusal/r:mismatch/r:path")[0] == "signing/signer.py"
    assert _text(answer, "r:refusal/r:mismatch/r:row")[0] == str(row.number)
    assert "sizeBytes" in _text(answer, "r:refusal/r:mismatch/r:field")


async def test_an_unreadable_medium_is_refused(world: DepositWorld, tmp_path: Path) -> None:
    package = tmp_path / "s.tar.gz"
    tables = pack(SIGNING_DIR, package, name="s", version="1")
    data = bytearray(package.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    package.write_bytes(bytes(data))
    await _upload(world, package)
    result, mid = await _apply(world, package, tables)
    assert result.ok, result.error_data
    item = await _final(world, mid)
    assert item["status"] == "refused"
    assert _text(_result(item), "r:refusal/r:ground") == ["medium-unreadable"]


async def test_an_application_without_its_upload_never_reaches_the_operator(world: DepositWorld,
                                                                            tmp_path: Path) -> None:
    package = tmp_path / "s.tar.gz"
    tables = pack(SIGNING_DIR, package, name="s", version="1")
    result, _ = await _apply(world, package, tables)  # never uploaded
    assert not result.ok
    assert result.status_code == "DEPOSIT_PACKAGE_MISSING", result
    assert set(result.error_data["messages"]) == {"kk", "ru", "en"}
    assert world.stats == {"requests": 0, "packages": 0}


async def test_another_senders_upload_does_not_count(world: DepositWorld, tmp_path: Path) -> None:
    package = tmp_path / "s.tar.gz"
    tables = pack(SIGNING_DIR, package, name="s", version="1")
    await _upload(world, package, PORTAL_B, PORTAL_B_PASSWORD)
    result, _ = await _apply(world, package, tables)
    assert result.status_code == "DEPOSIT_PACKAGE_MISSING", result
    assert set(result.error_data["messages"]) == {"kk", "ru", "en"}
    assert world.stats["requests"] == 0


async def test_a_repeated_application_id_gets_the_first_registration(world: DepositWorld) -> None:
    import uuid

    tables = scan(SIGNING_DIR, name="s", version="1")
    who = world.system.pki.person("kitap-head")
    body = etree.tostring(deposit_application(who, Path(__file__), tables=tables, architecture_code=SOFTWARE_CODE))
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/xml"}
    answers = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{world.operator_url}/api/v1/deposits", data=body, headers=headers) as response:
                answers.append((response.status, await response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 201
    assert len(world.operator[OPERATOR].deposits) == 1


async def test_submit_with_a_package_runs_the_whole_flow(world: DepositWorld, tmp_path: Path) -> None:
    """`egov-gateway submit --service egov.software-deposit --package FILE --wait`, in its own process: upload,
    sign, send, and the operator's signed act, whose tables are the package's."""
    package = tmp_path / "signing.tar.gz"
    tables = pack(SIGNING_DIR, package, name="egov-signing", version="1.0")
    (tmp_path / "signing.tar.gz.tables.json").write_text(json.dumps(tables.as_json()), encoding="utf-8")
    done = await asyncio.to_thread(subprocess.run, [
        *CLI, "submit", "--as", "kitap-signer", "--service", DEPOSIT_SERVICE, "--package", str(package), "--wait",
        "--json", "--sender", PORTAL, "--gateway", world.url, "--state-dir", str(world.system.pki.root.parent),
        "--software-code", SOFTWARE_CODE], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "EGOV_SENDER_PASSWORD": PORTAL_PASSWORD})
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["resultSignature"]["indication"] == "TOTAL_PASSED"
    act = outcome["result"]["act"]
    assert [row["sha256"] for row in act["tables"]["sourceFiles"]["file"]] == [r.sha256 for r in tables.source_files]
    assert outcome["result"]["outcome"] == "accepted"


# ---------------------------------------------------------------------------------------------- browser


@pytest_asyncio.fixture
async def page(browser):  # type: ignore[no-untyped-def]
    """A tab that records console errors and uncaught exceptions: any fails the test."""
    context = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    tab = await context.new_page()
    tab.set_default_timeout(30_000)
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(f"console.{message.type}: {message.text}")
           if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield tab
    seen = list(problems)
    await context.close()
    assert not seen, f"the page logged errors: {seen}"


PROGRESS_RECORDER = """
document.addEventListener('DOMContentLoaded', function () {
  var percent = document.getElementById('upload-percent');
  if (!percent) return;
  new MutationObserver(function () {
    var seen = JSON.parse(sessionStorage.getItem('progress') || '[]');
    seen.push(percent.textContent);
    sessionStorage.setItem('progress', JSON.stringify(seen));
  }).observe(percent, {childList: true, characterData: true, subtree: true});
});
"""


async def test_the_portal_form_uploads_with_progress_and_the_cabinet_shows_the_act(
        world: DepositWorld, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mocks.portal.web import run_portal

    root = _tree(tmp_path, big=9 << 20)
    package = tmp_path / "software.tar.gz"
    assert deposit_command(["pack", str(root), "--name", "test-system", "--version", "3.1", "--out",
                            str(package)]) == 0
    tables = Tables.from_json(json.loads((tmp_path / "software.tar.gz.tables.json").read_text(encoding="utf-8")))
    port = free_port()
    runner = await run_portal(pki=world.system.pki, gateway_url=world.url, sender=PORTAL, password=PORTAL_PASSWORD,
                              port=port)
    patches: list[str] = []
    page.on("request", lambda request: patches.append(request.headers.get("upload-offset", ""))
            if request.method == "PATCH" else None)
    try:
        await page.add_init_script(PROGRESS_RECORDER)
        portal = f"http://127.0.0.1:{port}"
        await page.goto(f"{portal}/deposit?lang=en")
        await page.get_by_test_id("person-kitap-head").click()
        await page.get_by_test_id("deposit-form").wait_for()
        await page.get_by_test_id("software-code").fill(SOFTWARE_CODE)
        await page.get_by_test_id("tables-file").set_input_files(str(tmp_path / "software.tar.gz.tables.json"))
        await page.get_by_test_id("package-file").set_input_files(str(package))
        await page.get_by_test_id("deposit-send").click()
        await page.wait_for_url(re.compile(r"/cabinet/\d{12}/"))
        await page.locator('[data-testid="status-badge"][data-status="completed"]').first.wait_for(timeout=60_000)
        assert await page.get_by_test_id("deposit-outcome").get_attribute("data-outcome") == "accepted"
        assert await page.locator('[data-testid="act-files"] tbody tr').count() == len(tables.source_files)
        assert await page.locator('[data-testid="act-libraries"] tbody tr').count() == len(tables.libraries)
        assert "TOTAL_PASSED" in await page.get_by_test_id("result-signature-indication").inner_text()
        await page.screenshot(path=str(ARTIFACTS / "deposit-cabinet.png"), full_page=True)
        async with page.expect_download() as download:
            await page.get_by_test_id("result-link").click()
        signed_act = Path(await (await download.value).path())
        assert b"SoftwareDepositResult" in signed_act.read_bytes() and b"Signature" in signed_act.read_bytes()
        progress = json.loads(await page.evaluate("sessionStorage.getItem('progress') || '[]'"))
    finally:
        await runner.cleanup()
    size = package.stat().st_size
    assert len(patches) == -(-size // (4 << 20)) and patches[0] == "0"  # 4 MiB chunks, from offset 0
    assert progress[-1] == "100%" and len(progress) == len(patches), progress
