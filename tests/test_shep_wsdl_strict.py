"""Every WSDL and XSD the gateway serves is loadable by a strict (wsimport-like) reader: each QName referenced
through type=, base=, itemType=, memberTypes=, ref=, element=, message=, binding= resolves to a definition of
the right kind, a schema imports every namespace it refers to, no global name is defined twice in one
namespace, and a binding matches its portType operation by operation and fault by fault. The test-tree
conformance schemas (tests/conformance/shep_v10) are held to the same rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from lxml import etree

import schemas

XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
CONFORMANCE = Path(__file__).resolve().parent / "conformance" / "shep_v10"
BUILTINS = {
    "string", "boolean", "decimal", "float", "double", "duration", "dateTime", "time", "date", "gYearMonth",
    "gYear", "gMonthDay", "gDay", "gMonth", "hexBinary", "base64Binary", "anyURI", "QName", "NOTATION",
    "normalizedString", "token", "language", "NMTOKEN", "NMTOKENS", "Name", "NCName", "ID", "IDREF", "IDREFS",
    "ENTITY", "ENTITIES", "integer", "nonPositiveInteger", "negativeInteger", "long", "int", "short", "byte",
    "nonNegativeInteger", "unsignedLong", "unsignedInt", "unsignedShort", "unsignedByte", "positiveInteger",
    "anyType", "anySimpleType",
}
TYPE_ATTRIBUTES = ("type", "base", "itemType")


def _qname(element: etree._Element, text: str) -> tuple[str | None, str]:
    prefix, _, local = text.strip().rpartition(":")
    return element.nsmap.get(prefix or None), local


class Definitions:
    """The global names of one WSDL and its schemas, by symbol space: (namespace, local name) pairs."""

    def __init__(self, wsdl: etree._Element, schema_roots: Iterable[etree._Element]) -> None:
        self.wsdl, self.schemas = wsdl, list(schema_roots)
        self.spaces: dict[str, list[tuple[str | None, str]]] = {
            "type": [], "element": [], "group": [], "message": [], "portType": [], "binding": []}
        for schema in self.schemas:
            namespace = schema.get("targetNamespace")
            for child in schema:
                kind = {f"{{{XSD}}}complexType": "type", f"{{{XSD}}}simpleType": "type",
                        f"{{{XSD}}}element": "element", f"{{{XSD}}}group": "group"}.get(str(child.tag))
                if kind:
                    self.spaces[kind].append((namespace, child.get("name", "")))
        target = wsdl.get("targetNamespace")
        for kind in ("message", "portType", "binding"):
            self.spaces[kind] += [(target, item.get("name", "")) for item in wsdl.findall(f"{{{WSDL}}}{kind}")]

    def problems(self) -> list[str]:
        found = [f"duplicate {kind} {{{ns}}}{name}" for kind, names in self.spaces.items()
                 for (ns, name), count in Counter(names).items() if count > 1]
        for schema in self.schemas:
            found += self._schema_problems(schema)
        return found + self._wsdl_problems()

    def _resolves(self, kind: str, qname: tuple[str | None, str]) -> bool:
        if kind == "type" and qname[0] == XSD:
            return qname[1] in BUILTINS
        return qname in self.spaces[kind]

    def _schema_problems(self, schema: etree._Element) -> list[str]:
        own = schema.get("targetNamespace")
        imported = {item.get("namespace") for item in schema.iter(f"{{{XSD}}}import")}
        found = []
        for element in schema.iter(etree.Element):
            references = [("type", element.get(a)) for a in TYPE_ATTRIBUTES if element.get(a)]
            references += [("type", member) for member in (element.get("memberTypes") or "").split()]
            if element.get("ref") and element.tag in (f"{{{XSD}}}element", f"{{{XSD}}}group"):
                references.append(("element" if element.tag == f"{{{XSD}}}element" else "group", element.get("ref")))
            for kind, text in references:
                qname = _qname(element, text)
                if qname[0] is None and own is not None:
                    found.append(f"{text!r} has no namespace in schema {own}")
                elif not self._resolves(kind, qname):
                    found.append(f"undefined {kind} {{{qname[0]}}}{qname[1]} (in schema {own})")
                elif qname[0] not in (own, XSD) and qname[0] not in imported:
                    found.append(f"schema {own} refers to {qname[0]} without importing it")
        return found

    def _wsdl_problems(self) -> list[str]:
        found = []
        references = [(part, "element", part.get("element")) for part in self.wsdl.iter(f"{{{WSDL}}}part")]
        references += [(part, "type", part.get("type")) for part in self.wsdl.iter(f"{{{WSDL}}}part")]
        for port_type in self.wsdl.iter(f"{{{WSDL}}}portType"):
            for io in port_type.iter(f"{{{WSDL}}}input", f"{{{WSDL}}}output", f"{{{WSDL}}}fault"):
                references.append((io, "message", io.get("message")))
        references += [(b, "portType", b.get("type")) for b in self.wsdl.iter(f"{{{WSDL}}}binding")]
        references += [(p, "binding", p.get("binding")) for p in self.wsdl.iter(f"{{{WSDL}}}port")]
        for element, kind, text in references:
            if text and not self._resolves(kind, _qname(element, text)):
                found.append(f"undefined {kind} {text!r} in the WSDL")
        return found + self._binding_problems()

    def _binding_problems(self) -> list[str]:
        found = []
        port_types = {pt.get("name"): pt for pt in self.wsdl.iter(f"{{{WSDL}}}portType")}
        for binding in self.wsdl.iter(f"{{{WSDL}}}binding"):
            port_type = port_types.get(_qname(binding, binding.get("type", ""))[1])
            if port_type is None:
                continue
            expected = {op.get("name"): sorted(f.get("name") for f in op.findall(f"{{{WSDL}}}fault"))
                        for op in port_type.findall(f"{{{WSDL}}}operation")}
            bound = {}
            for op in binding.findall(f"{{{WSDL}}}operation"):
                faults = op.findall(f"{{{WSDL}}}fault")
                bound[op.get("name")] = sorted(f.get("name") for f in faults)
                found += [f"soap:fault {s.get('name')!r} in wsdl:fault {f.get('name')!r}" for f in faults
                          for s in f.findall(f"{{{SOAP}}}fault") if s.get("name") != f.get("name")]
            if bound != expected:
                found.append(f"binding {binding.get('name')} does not match its portType: {bound} != {expected}")
        return found


def served(wsdl: bytes) -> Definitions:
    root = etree.fromstring(wsdl)
    return Definitions(root, root.iterfind(f"{{{WSDL}}}types/{{{XSD}}}schema"))


def from_files(wsdl_path: Path) -> Definitions:
    """A WSDL and every schema it reaches through schemaLocation, read from the files beside it."""
    root = etree.parse(str(wsdl_path)).getroot()
    seen: dict[Path, etree._Element] = {}
    todo = [wsdl_path.parent / item.get("schemaLocation") for item in root.iter(f"{{{XSD}}}import")]
    while todo:
        path = todo.pop().resolve()
        if path not in seen:
            seen[path] = etree.parse(str(path)).getroot()
            todo += [path.parent / item.get("schemaLocation") for item in seen[path].iter(f"{{{XSD}}}import")
                     if item.get("schemaLocation")]
    inline = list(root.iterfind(f"{{{WSDL}}}types/{{{XSD}}}schema"))
    return Definitions(root, [*inline, *seen.values()])


SERVED = {
    "SyncChannel": lambda: schemas.sync_channel_wsdl("http://127.0.0.1:1/shep/sync"),
    "AsyncChannel": lambda: schemas.async_channel_wsdl("http://127.0.0.1:1/shep/async"),
    "AsyncChannelClient": lambda: schemas.async_client_wsdl("http://127.0.0.1:1/shep/client"),
}


@pytest.mark.parametrize("name", list(SERVED))
def test_served_wsdl_is_strictly_consistent(name: str) -> None:
    definitions = served(SERVED[name]())
    assert definitions.problems() == []
    assert len(definitions.spaces["element"]) >= 3 and definitions.spaces["binding"]


@pytest.mark.parametrize("path", [schemas.SYNC_WSDL, schemas.ASYNC_WSDL, schemas.ASYNC_CLIENT_WSDL])
def test_package_wsdl_and_its_xsds_are_strictly_consistent(path: str) -> None:
    assert from_files(schemas.schema_path(path)).problems() == []


@pytest.mark.parametrize("path", sorted(CONFORMANCE.glob("*.wsdl")), ids=lambda p: p.name)
def test_conformance_wsdls_are_strictly_consistent(path: Path) -> None:
    assert from_files(path).problems() == []


def test_the_checker_finds_what_a_strict_reader_refuses() -> None:
    wsdl = etree.fromstring(schemas.async_channel_wsdl("http://127.0.0.1:1/shep/async"))
    schema = wsdl.find(f"{{{WSDL}}}types/{{{XSD}}}schema")
    assert schema is not None
    first = schema.find(f"{{{XSD}}}element")
    assert first is not None
    schema.append(etree.fromstring(etree.tostring(first)))  # a second global element of the same name
    first.find(f".//{{{XSD}}}element").set("type", "types:NoSuchType")
    operation = wsdl.find(f"{{{WSDL}}}binding/{{{WSDL}}}operation")
    operation.find(f"{{{WSDL}}}fault").set("name", "renamed")
    part = wsdl.find(f"{{{WSDL}}}message/{{{WSDL}}}part")
    part.set("element", "ops:missing")
    problems = served(etree.tostring(wsdl)).problems()
    assert any(p.startswith("duplicate element") for p in problems)
    assert any("undefined type {http://bip.bee.kz/AsyncChannel/v10/types}NoSuchType" in p for p in problems)
    assert any("undefined element 'ops:missing'" in p for p in problems)
    assert any("does not match its portType" in p for p in problems)
    assert any("soap:fault" in p for p in problems)
