"""DNS names (protocols/dns_name.py): text forms, bounds, case, and a name
written with compression and read back (the message-level cases, pointer
loops and chains included, are in test_dns.py)."""

from __future__ import annotations

import pytest

from trionet.protocols.dns import Message, make_query
from trionet.protocols.dns_name import MAX_NAME_LEN, Name, NameWriter, read_name


@pytest.mark.parametrize(
    ("text", "labels", "back"),
    [
        ("", (), "."),
        (".", (), "."),
        ("com", (b"com",), "com"),
        ("www.Example.com.", (b"www", b"Example", b"com"), "www.Example.com"),
        ("a\\.b.c", (b"a.b", b"c"), "a\\.b.c"),
        ("a\\\\b", (b"a\\b",), "a\\\\b"),
        ("\\000\\255 x", (b"\x00\xff x",), "\\000\\255\\032x"),
    ],
)
def test_name_text_forms(text: str, labels: tuple[bytes, ...], back: str) -> None:
    name = Name.from_text(text)
    assert name.labels == labels
    assert str(name) == back
    assert Name.from_text(str(name)) == name


@pytest.mark.parametrize(
    "text", ["a..b", ".a", "a\\", "\\256", "caf\u00e9", "a" * 64, ".".join(["a" * 63] * 4)]
)
def test_bad_name_texts(text: str) -> None:
    with pytest.raises(ValueError):
        Name.from_text(text)


def test_name_bounds() -> None:
    longest = Name((b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61))
    assert longest.wire_length == 255
    with pytest.raises(ValueError):
        Name((b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62))
    with pytest.raises(ValueError):
        Name((b"",))
    with pytest.raises(ValueError):
        Name((b"x" * 64,))
    assert Message.parse(make_query(1, longest, 1).emit()).questions[0].name == longest


def test_case_insensitive_comparison() -> None:
    a = Name.from_text("WWW.Example.COM")
    assert a != Name.from_text("www.example.com")  # exact equality keeps case
    assert a.matches("www.example.com") and a.lower() == Name.from_text("www.example.com")
    assert not a.matches("www.example.co") and not a.matches("example.com")
    assert Name((b"\xc9",)).matches(Name((b"\xc9",))) and not Name((b"\xc9",)).matches(Name((b"\xe9",)))
    assert a.is_subdomain_of("example.com") and a.is_subdomain_of("EXAMPLE.com") and a.is_subdomain_of(".")
    assert a.is_subdomain_of(a) and not Name.from_text("example.com").is_subdomain_of(a)
    assert not a.is_subdomain_of("ample.com")


def test_a_name_written_twice_is_a_pointer_the_reader_follows() -> None:
    w = NameWriter(compress=True)
    w.buf += bytes(12)  # a header's worth, as in a message
    name = Name.from_text("www.example.com")
    w.name(name)
    first = len(w.buf)
    w.name(Name.from_text("mail.example.com"))
    assert len(w.buf) - first == 1 + 4 + 2  # "mail", then a pointer to "example.com"
    data = bytes(w.buf)
    memo: dict = {}
    got, end = read_name(data, 12, memo)
    assert got == name and end == first
    got, end = read_name(data, first, memo)
    assert str(got) == "mail.example.com" and end == len(data)
    assert name.wire_length <= MAX_NAME_LEN
