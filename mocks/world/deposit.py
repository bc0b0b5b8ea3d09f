"""`egov-gateway deposit pack` and the software deposit's part of `egov-gateway submit --package`.

``deposit pack DIR --name NAME --version V [--out FILE]`` writes the medium (a tar.gz, see
:mod:`mocks.deposit.pack` for why tar) and, next to it, ``FILE.tables.json``: the act's tables of exactly what
went in. ``submit --service egov.software-deposit --package FILE`` uploads FILE to the gateway (resumable, with
the uploads client), signs the application carrying those tables and the package's SHA-256 as the organisation
employee, sends it, and with ``--wait`` follows it to the operator's signed act.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from mocks.deposit.forms import PackageInfo, build_application
from mocks.deposit.medium import read_medium
from mocks.deposit.pack import SourceFile, Tables, pack
from mocks.pki import Person

DEPOSIT_SERVICE = "egov.software-deposit"
DEMO_SOFTWARE_CODE = "EGOV-GW-001"
"The architecture-portal code the demo's operator has in its register of software."


def tables_path(package: Path) -> Path:
    return package.with_name(package.name + ".tables.json")


def pack_command(argv: list[str]) -> int:
    """`egov-gateway deposit pack DIR --name NAME --version V [--out FILE]`."""
    parser = argparse.ArgumentParser(prog="egov-gateway deposit", description="the software deposit's test tools")
    commands = parser.add_subparsers(dest="deposit_command", required=True)
    packing = commands.add_parser("pack", help="make a directory into the deposit's package and act tables")
    packing.add_argument("directory", type=Path)
    packing.add_argument("--name", required=True, help="the software's name (the act's disk label)")
    packing.add_argument("--version", required=True, help="its version")
    packing.add_argument("--out", type=Path, default=None, help="the archive (default NAME-VERSION.tar.gz)")
    packing.add_argument("--json", action="store_true", help="print the tables as JSON")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    out = args.out or Path(f"{args.name}-{args.version}.tar.gz")
    tables = pack(args.directory, out, name=args.name, version=args.version)
    sha256 = file_sha256(out)
    # The package too: the portal's form reads its digest from here (a browser cannot hash a huge file in steps).
    kept = {**tables.as_json(), "package": {"fileName": out.name, "sizeBytes": out.stat().st_size, "sha256": sha256}}
    tables_path(out).write_text(json.dumps(kept, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(kept, ensure_ascii=False))
        return 0
    print(f"package  {out}  ({out.stat().st_size} bytes, sha256 {sha256})")
    print(f"tables   {tables_path(out)}  ({len(tables.source_files)} files, {len(tables.libraries)} libraries)")
    print_tables(tables)
    return 0


def print_tables(tables: Tables, *, limit: int = 15) -> None:
    """The act's two tables as a person reads them (the first ``limit`` rows of each)."""
    print("1) source code: No. | disk label | directory | file | MB | language | changed")
    for row in tables.source_files[:limit]:
        print(f"  {row.number:>4} | {row.disk_label} | {row.directory} | {row.file_name} | {row.size_mb} | "
              f"{row.language or ''} | {row.modified_at}")
    if len(tables.source_files) > limit:
        print(f"  ... {len(tables.source_files) - limit} more")
    print("2) libraries and platforms: No. | disk label | directory | name | MB | language | version")
    for lib in tables.libraries[:limit]:
        print(f"  {lib.number:>4} | {lib.disk_label} | {lib.directory} | {lib.name} | | {lib.language or ''} | "
              f"{lib.version}")
    if len(tables.libraries) > limit:
        print(f"  ... {len(tables.libraries) - limit} more")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def package_tables(package: Path, *, name: str, version: str) -> Tables:
    """The act's tables for ``package``: ``FILE.tables.json`` from ``deposit pack`` when present, else read from
    the archive itself (table 1 only)."""
    kept = tables_path(package)
    if kept.exists():
        return Tables.from_json(json.loads(kept.read_text(encoding="utf-8")))
    label = f"{name} {version}"
    rows = []
    for number, member in enumerate(sorted(read_medium(package).values(), key=lambda m: m.path), start=1):
        directory, _, file_name = member.path.rpartition("/")
        rows.append(SourceFile(number, label, directory or ".", file_name, member.size, None,
                               datetime.fromtimestamp(member.mtime, UTC).isoformat(), member.sha256))
    return Tables(label, tuple(rows), ())


def deposit_application(person: Person, package: Path, *, tables: Tables | None = None,
                        architecture_code: str = DEMO_SOFTWARE_CODE, sha256: str | None = None) -> etree._Element:
    """The unsigned application for ``package`` from ``person``'s organisation."""
    tables = tables or package_tables(package, name=package.name.split(".")[0], version="1")
    name, _, version = tables.disk_label.partition(" ")
    return build_application(
        bin=person.bin or "", owner_name=person.organisation or "", software_name=name or package.name,
        software_version=version or "1", architecture_code=architecture_code,
        contact_person=f"{person.surname} {person.name}",
        package=PackageInfo(package.name, package.stat().st_size, sha256 or file_sha256(package)), tables=tables)


async def upload(gateway: str, sender: str, password: str, package: Path, sha256: str,
                 on_progress: Callable[[int, int], None] | None = None) -> str:
    """Upload ``package`` to the gateway's ``/api/v1/uploads`` as ``sender`` (tus, resumable); its upload URL."""
    import aiohttp

    from gateway.uploads.client import upload_package

    async with aiohttp.ClientSession() as session:
        return await upload_package(session, gateway, aiohttp.BasicAuth(sender, password).encode(), package,
                                    sha256=sha256, on_progress=on_progress)


def signed_deposit(args: argparse.Namespace, person: Person) -> etree._Element:
    """``submit --package``: upload the package, then the application carrying its tables, signed by ``person``.
    Raises KeyError (as the other samples do) without ``--package``."""
    import asyncio

    from gateway.uploads.client import UploadError
    from mocks.portal.applicant import signer_for

    if not getattr(args, "package", None):
        raise KeyError(f"{DEPOSIT_SERVICE} needs --package FILE (make one with `egov-gateway deposit pack`)")
    package = Path(args.package)
    if not package.is_file():
        raise KeyError(f"--package: no file {package}")
    sha256 = file_sha256(package)
    try:
        url = asyncio.run(upload(args.gateway, args.sender, args.password or "", package, sha256))
    except UploadError as exc:
        raise KeyError(f"the gateway refused the upload: {exc}") from None
    if not args.json:
        print(f"  uploaded {package} ({package.stat().st_size} bytes) to {url}", flush=True)
    document = deposit_application(person, package, sha256=sha256,
                                   architecture_code=getattr(args, "software_code", None) or DEMO_SOFTWARE_CODE)
    return signer_for(person, key=args.key).sign(document)
