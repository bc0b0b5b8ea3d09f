"""`egov-gateway deposit pack`: a directory made into the deposit's medium (one tar.gz archive) and the tables of
the acceptance-transfer act (appendix 3 of the deposit rules) that describe it.

Why tar and not zip: a tar archive is a plain sequence of (header, data) records, so the operator reads it as a
stream, one member after another, and never needs the whole file or a seek (a zip keeps its directory at the
end, and its local headers may leave the sizes to a trailing data descriptor). A tar header also keeps the
change date as UTC seconds, where zip keeps a local time of day in 2-second steps with no time zone, which
would make the act's "date the file was changed" ambiguous.

Table 1 lists every regular file (hidden files and folders, ``__pycache__`` and ``*.pyc`` left out, in path
order) with its size, SHA-256 and change date (whole seconds, as tar keeps it); the language follows the file's
extension. Table 2 lists the libraries declared by the usual manifest files found in the tree.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from signing.xmlsafe import XmlLimits, parse_untrusted

LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript", ".ts": "TypeScript",
    ".go": "Go", ".java": "Java", ".kt": "Kotlin", ".c": "C", ".h": "C", ".cpp": "C++", ".cs": "C#",
    ".rs": "Rust", ".rb": "Ruby", ".php": "PHP", ".sql": "SQL", ".sh": "Shell", ".html": "HTML",
    ".css": "CSS", ".xsd": "XML Schema", ".wsdl": "WSDL", ".xml": "XML", ".toml": "TOML", ".json": "JSON",
    ".yaml": "YAML", ".yml": "YAML", ".md": "Markdown",
}
"The act's column 6, 'programming language (where needed)', from the file's extension."
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", ".git", ".venv"})
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """Table 1 row: one file of the application's source code."""

    number: int
    "Row number (No.)."
    disk_label: str
    "Disk label: the software's name and version."
    directory: str
    "Directory on the disk (POSIX, relative; '.' for the top)."
    file_name: str
    "File name."
    size_bytes: int
    "Exact size (the act shows it in MB too)."
    language: str | None
    "Programming language, when the extension says."
    modified_at: str
    "When the file was changed (ISO, UTC, whole seconds)."
    sha256: str
    "SHA-256 of its content, lowercase hex."

    @property
    def path(self) -> str:
        return self.file_name if self.directory in ("", ".") else f"{self.directory}/{self.file_name}"

    @property
    def size_mb(self) -> str:
        return mb(self.size_bytes)


@dataclass(frozen=True)
class Library:
    """Table 2 row: one library or platform the software uses."""

    number: int
    "Row number."
    disk_label: str
    "Disk label."
    directory: str
    "Directory of the manifest that declares it."
    name: str
    "Library / platform name."
    language: str | None
    "Its language (from the kind of manifest)."
    version: str
    "Version or version range as declared ('' when none: shown as 'any')."
    declared_in: str
    "The manifest file (path in the archive)."


@dataclass(frozen=True)
class Tables:
    """The act's two tables."""

    disk_label: str
    "Software name and version."
    source_files: tuple[SourceFile, ...]
    "Table 1."
    libraries: tuple[Library, ...]
    "Table 2."

    def as_json(self) -> dict[str, Any]:
        return {"diskLabel": self.disk_label, "sourceFiles": [asdict(f) for f in self.source_files],
                "libraries": [asdict(lib) for lib in self.libraries]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tables:
        return cls(str(data["diskLabel"]), tuple(SourceFile(**row) for row in data["sourceFiles"]),
                   tuple(Library(**row) for row in data["libraries"]))


def mb(size: int) -> str:
    """Size in megabytes (MiB) as the act shows it."""
    return f"{size / (1024 * 1024):.6f}"


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in relative):
            continue
        if path.is_file() and not path.is_symlink() and path.suffix != ".pyc":
            yield path


def _row(number: int, label: str, root: Path, path: Path, sha256: str, stat_size: int, mtime: int) -> SourceFile:
    relative = path.relative_to(root)
    directory = relative.parent.as_posix()
    return SourceFile(number, label, directory, relative.name, stat_size, LANGUAGES.get(path.suffix.lower()),
                      datetime.fromtimestamp(mtime, UTC).isoformat(), sha256)


def scan(root: Path, *, name: str, version: str) -> Tables:
    """The act's tables for the tree at ``root`` as it is now (reads every file once, in chunks)."""
    label = f"{name} {version}"
    rows = []
    for number, path in enumerate(_files(root), start=1):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        stat = path.stat()
        rows.append(_row(number, label, root, path, digest.hexdigest(), stat.st_size, int(stat.st_mtime)))
    return Tables(label, tuple(rows), tuple(libraries(root, label)))


class _Hashing(io.RawIOBase):
    """A file read through once by tarfile while its digest is taken."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def pack(root: Path, out: Path, *, name: str, version: str) -> Tables:
    """Write the tree at ``root`` to the tar.gz ``out`` and return the tables of exactly what was written (each
    file is read once: the digest is taken while it goes into the archive)."""
    label, rows = f"{name} {version}", []
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for number, path in enumerate(_files(root), start=1):
            stat = path.stat()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
            with path.open("rb") as handle:
                reader = _Hashing(handle)
                tar.addfile(info, reader)  # type: ignore[arg-type]  # tarfile reads it with read(n)
            rows.append(_row(number, label, root, path, reader.digest.hexdigest(), stat.st_size, info.mtime))
    return Tables(label, tuple(rows), tuple(libraries(root, label)))


def write_archive(root: Path, out: Path) -> None:
    """Only the archive of the tree as it is now (tests: a medium that no longer matches earlier tables)."""
    pack(root, out, name="x", version="x")


# ------------------------------------------------------------------------------------------------ table 2
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*([^;#]*)")


def _requirement(text: str) -> tuple[str, str] | None:
    match = _REQUIREMENT.match(text)
    if not match:
        return None
    return match.group(1), match.group(2).strip().replace(" ", "")


def _python(path: Path) -> list[tuple[str, str]]:
    if path.name == "requirements.txt":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        found = [_requirement(line) for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]
        return [item for item in found if item]
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found = [_requirement(item) for item in data.get("project", {}).get("dependencies", [])]
    return [item for item in found if item]


def _npm(path: Path) -> list[tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(name, str(version)) for key in ("dependencies", "devDependencies")
            for name, version in sorted(data.get(key, {}).items())]


def _go(path: Path) -> list[tuple[str, str]]:
    found, block = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("//")[0].split()
        if words[:2] == ["require", "("]:
            block = True
        elif block and words == [")"]:
            block = False
        elif block and len(words) >= 2:
            found.append((words[0], words[1]))
        elif words[:1] == ["require"] and len(words) >= 3:
            found.append((words[1], words[2]))
    return found


def _maven(path: Path) -> list[tuple[str, str]]:
    root = parse_untrusted(path.read_bytes(), XmlLimits(max_bytes=8 * 1024 * 1024))
    found = []
    for dependency in root.iter("{*}dependency"):
        def text(name: str, element: Any = dependency) -> str:
            child = element.find(f"{{*}}{name}")
            return (child.text or "").strip() if child is not None else ""
        found.append((f"{text('groupId')}:{text('artifactId')}", text("version")))
    return found


MANIFESTS = {"pyproject.toml": ("Python", _python), "requirements.txt": ("Python", _python),
             "package.json": ("JavaScript", _npm), "go.mod": ("Go", _go), "pom.xml": ("Java", _maven)}
"Manifest file name: (language, reader of (name, version) pairs)."


def libraries(root: Path, label: str) -> Iterator[Library]:
    """Table 2 from the manifest files in the tree (an unreadable manifest is skipped: it is still in table 1)."""
    number = 0
    for path in _files(root):
        if path.name not in MANIFESTS:
            continue
        language, reader = MANIFESTS[path.name]
        try:
            declared = reader(path)
        except (ValueError, OSError, tomllib.TOMLDecodeError):
            continue
        relative = path.relative_to(root)
        for name, version in declared:
            number += 1
            yield Library(number, label, relative.parent.as_posix(), name, language, version or "any",
                          relative.as_posix())
