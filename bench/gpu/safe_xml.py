"""A small, bounded XML reader for tool output railbench did not write (``nvidia-smi -q -x``).

XML from outside can attack its reader: entity declarations that expand a few bytes into gigabytes ("billion
laughs"), external entities that read local files or the network, nesting deep enough to exhaust the stack,
millions of elements. This reader uses the standard library's expat with those doors shut:

* any entity declaration (``<!ENTITY``, internal or external) is refused, so no entity can expand or point
  anywhere; a reference to an entity nobody declared is refused too; the five predefined ones (``&amp;``...)
  and character references stay, as they are plain text;
* external DTDs are never fetched (expat does not load them unless asked; the ``<!DOCTYPE nvidia_smi_log
  SYSTEM "nvsmi_device_v12.dtd">`` line that nvidia-smi writes is allowed and ignored); a DOCTYPE with an
  internal subset (``[...]``) is refused whole, so no ``<!ATTLIST>`` default is copied into every element (0.3 MB
  of them took expat over 30 s) and no ``<!ENTITY>`` is declared;
* the document is read as UTF-8, whatever it declares: nvidia-smi writes ``<?xml version="1.0" ?>`` (R550) or
  ``encoding="UTF-8"``, and any other declared encoding is refused (expat hands an encoding it does not know to
  Python's codecs, where UTF-7, UTF-16, rot13, idna and others end in a ValueError or LookupError, not an
  ExpatError);
* the input, the depth, the number of elements and each element's text are capped.

What does not fit raises :class:`XmlRefused` with one line that says why. The result is a tree of
:class:`Element` (tag, text, children): enough to navigate with :meth:`Element.find` by a path of tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers import expat

MAX_XML_BYTES = 32 << 20
"""nvidia-smi -q -x is about 100-200 KB per GPU (the supported clocks make most of it); 72 GPUs stay under 16 MB."""
MAX_DEPTH = 64
MAX_ELEMENTS = 2_000_000
MAX_TEXT_CHARS = 4096
"""Text kept per element: a value nvidia-smi prints is a word or a number; more is cut."""
ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
"""Declared encodings read (as UTF-8, of which ASCII is a part): what nvidia-smi declares, or nothing."""


class XmlRefused(ValueError):
    """The document is not XML railbench will read (malformed, hostile or too large)."""


@dataclass
class Element:
    """One element: its tag, its text (stripped, capped) and its child elements, in order."""

    tag: str
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    _text: list[str] = field(default_factory=list, repr=False)
    _size: int = field(default=0, repr=False)

    @property
    def text(self) -> str:
        return "".join(self._text).strip()

    def child(self, tag: str) -> Element | None:
        """The first child called ``tag``."""
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> Iterator[Element]:
        """Every child called ``tag``."""
        return (c for c in self.children if c.tag == tag)

    def find(self, *tags: str) -> Element | None:
        """The element at the path ``tags`` below this one (the first child at each step)."""
        here: Element | None = self
        for tag in tags:
            here = here.child(tag) if here is not None else None
        return here

    def value(self, *tags: str) -> str | None:
        """The text at the path ``tags``; None where the element is absent."""
        found = self.find(*tags)
        return found.text if found is not None else None

    def add_text(self, data: str) -> None:
        room = MAX_TEXT_CHARS - self._size
        if room > 0:
            kept = data[:room]
            self._text.append(kept)
            self._size += len(kept)


def _refuse(why: str) -> XmlRefused:
    return XmlRefused(why)


@dataclass
class _Tree:
    """The elements expat reports, built into a tree within the limits; every refusal names ``source``."""

    source: str
    stack: list[Element] = field(default_factory=list)
    root: list[Element] = field(default_factory=list)
    count: int = 0

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise _refuse(f"{self.source} has more than {MAX_ELEMENTS} elements")
        if len(self.stack) >= MAX_DEPTH:
            raise _refuse(f"{self.source} nests elements more than {MAX_DEPTH} deep")
        element = Element(tag[:256], {k[:256]: v[:MAX_TEXT_CHARS] for k, v in list(attributes.items())[:64]})
        if self.stack:
            self.stack[-1].children.append(element)
        elif self.root:
            raise _refuse(f"{self.source} has more than one root element")
        else:
            self.root.append(element)
        self.stack.append(element)

    def end(self, tag: str) -> None:
        self.stack.pop()

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1].add_text(data)

    def declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ENCODINGS:
            raise _refuse(f"{self.source} declares the encoding {encoding[:40]!r}: only UTF-8 is read")

    def doctype(self, name: str, system_id: str | None, public_id: str | None, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise _refuse(f"{self.source} has a DTD of its own (<!DOCTYPE {name[:40]} [...]>): DTDs are refused")

    def entity_declared(self, name: str, *rest: object) -> None:
        raise _refuse(f"{self.source} declares the entity {name[:40]!r}: entity declarations are refused")

    def entity_skipped(self, name: str, is_parameter: bool) -> None:
        raise _refuse(f"{self.source} refers to the undeclared entity {name[:40]!r}")

    def external_entity(self, *args: object) -> int:
        raise _refuse(f"{self.source} refers to an external entity")


def parse(data: bytes, source: str) -> Element:
    """The root element of the XML in ``data`` (from ``source``, named in every refusal)."""
    if len(data) > MAX_XML_BYTES:
        raise XmlRefused(f"{source} is {len(data)} bytes of XML, over the {MAX_XML_BYTES >> 20} MiB limit")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a byte-order mark: expat would read UTF-16 whatever it is told
        raise XmlRefused(f"{source} is UTF-16 or UTF-32 (its byte-order mark): only UTF-8 is read")
    parser = expat.ParserCreate(encoding="utf-8")  # read as UTF-8 whatever is declared; declaration() checks it
    tree = _Tree(source)
    parser.XmlDeclHandler = tree.declaration
    parser.StartDoctypeDeclHandler = tree.doctype
    parser.StartElementHandler = tree.start
    parser.EndElementHandler = tree.end
    parser.CharacterDataHandler = tree.text
    parser.EntityDeclHandler = tree.entity_declared
    parser.UnparsedEntityDeclHandler = tree.entity_declared
    parser.SkippedEntityHandler = tree.entity_skipped
    parser.ExternalEntityRefHandler = tree.external_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        why = expat.errors.messages.get(exc.code, "malformed") if exc.code is not None else "malformed"
        raise XmlRefused(f"{source} is not well-formed XML ({why}, line {exc.lineno})") from None
    except RecursionError:
        raise XmlRefused(f"{source} nests too deep to read") from None
    if not tree.root:
        raise XmlRefused(f"{source} holds no XML element")
    return tree.root[0]
