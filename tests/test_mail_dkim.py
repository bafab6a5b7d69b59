"""DKIM: the key `dkim-keygen` writes, signatures dkimpy verifies with the one-click headers in
`h=`, and `magnet mail check` against a stubbed resolver (found, missing, unreachable)."""
from __future__ import annotations

import ipaddress
import stat
from email.message import EmailMessage
from types import SimpleNamespace

import dkim as dkimpy
import dns.exception
import dns.resolver
import pytest

from engine.mail import dkim

CONFIG = {"MAIL_FROM": "News <news@example.com>", "MAIL_DKIM_SELECTOR": "magnet1"}


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "News <news@example.com>"
    message["To"] = "jane@example.org"
    message["Subject"] = "Héllo  there"  # encoded, and with a run of spaces
    message["Date"] = "Wed, 02 Dec 2026 05:00:00 +0000"
    message["Message-ID"] = "<1@example.com>"
    message["List-Unsubscribe"] = "<https://example.com/email/unsubscribe/t>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = "News <news.example.com>"
    message.set_content("Hello \t Jane  \n\n\n")
    message.add_alternative("<p>Hello <b>Jane</b></p>   \n", subtype="html")
    return message


def _keygen(app, *args: str):
    return app.test_cli_runner().invoke(args=["mail", "dkim-keygen", *args])


def _published(app) -> str:
    result = _keygen(app, "--selector", "magnet1")
    assert result.exit_code == 0, result.output
    return result.output


def test_keygen_writes_a_private_key_and_prints_the_record(make_app):
    app = make_app(**CONFIG)
    output = _published(app)
    with app.app_context():
        path = dkim.key_path("magnet1")
        key = dkim.load_key(path)
        value = dkim.dns_record("magnet1", "example.com", key)[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and key.key_size == 2048
    assert "magnet1._domainkey.example.com" in output
    parts = dkim.dns_strings(value)
    assert len(parts) > 1 and all(len(p) <= 255 for p in parts)
    assert " ".join(f'"{p}"' for p in parts) in output and value.startswith("v=DKIM1; k=rsa; p=")
    again = _keygen(app, "--selector", "magnet1")
    assert again.exit_code != 0 and "--force" in again.output  # never replaced silently
    with app.app_context():
        assert dkim.load_key(path).private_numbers() == key.private_numbers()
    assert _keygen(app, "--selector", "../x").exit_code != 0


def test_signed_message_verifies_and_covers_the_unsubscribe_headers(make_app):
    app = make_app(**CONFIG)
    _published(app)
    with app.app_context():
        signer = dkim.load_signer()
        data = dkim.sign_message(_message(), signer)
        value = dkim.dns_record("magnet1", "example.com",
                                dkim.load_key(dkim.key_path("magnet1")))[1]
    assert data.startswith(b"DKIM-Signature: ") and b"\r\n" in data

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"magnet1._domainkey.example.com."
        return value.encode()

    assert dkimpy.verify(data, dnsfunc=dns)
    signature = dkimpy.DKIM(data)
    signature.verify(dnsfunc=dns)
    tags = signature.signature_fields
    signed = [h.strip() for h in tags[b"h"].decode().split(":")]
    assert signed.count("from") == 2  # oversigned: no second From can be added
    for name in ("to", "subject", "date", "message-id", "mime-version", "content-type",
                 "list-unsubscribe", "list-unsubscribe-post", "list-id"):
        assert name in signed
    assert tags[b"c"] == b"relaxed/relaxed" and tags[b"d"] == b"example.com"
    tampered = data.replace(b"One-Click", b"One-Clack")
    assert not dkimpy.verify(tampered, dnsfunc=dns)
    # the relaxed body rules are dkimpy's own
    from dkim.canonicalization import Relaxed
    for body in (b"", b"\r\n", b"a \t b  \r\n\r\n\r\n", b"\tx\t \r\n y", b" \r\n"):
        assert dkim.canonical_body(body) == Relaxed.canonicalize_body(body)


def _dkimpy_signature(key, message: bytes, stamp: int) -> bytes:
    """The same signature made with dkimpy's own parser, selection and header hashing."""
    import base64
    import hashlib

    from dkim.canonicalization import CanonicalizationPolicy
    relaxed = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    headers, body = dkimpy.rfc822_parse(message)
    present = {name.lower() for name, _ in headers}
    include = [name for name in dkim.SIGNED if name in present] + [b"from"]
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"),
              (b"d", b"example.com"), (b"s", b"magnet1"), (b"t", str(stamp).encode()),
              (b"h", b" : ".join(include)),
              (b"bh", base64.b64encode(hashlib.sha256(
                  relaxed.canonicalize_body(body)).digest())), (b"b", b"0" * 60)]
    value = dkimpy.fold(b"; ".join(b"=".join(f) for f in fields), namelen=14)
    hasher = hashlib.sha256()
    dkimpy.hash_headers(hasher, relaxed, relaxed.canonicalize_headers(headers), include,
                        (b"DKIM-Signature", b" " + dkimpy.RE_BTAG.sub(b"\\1", value)), None)
    fields[-1] = (b"b", base64.b64encode(key.sign(hasher.digest(), dkim._PAD, dkim._PREHASHED)))
    return b"DKIM-Signature: " + dkimpy.fold(b"; ".join(b"=".join(f) for f in fields)
                                             + b"\r\n", namelen=14)


def test_the_fast_header_path_signs_exactly_as_dkimpy(make_app, monkeypatch):
    """Folded, repeated and tab-spaced headers, odd names, a bare LF: the same bytes as
    dkimpy's own construction (RSA PKCS#1 v1.5 is deterministic)."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric import rsa
    moment = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    monkeypatch.setattr(dkim, "utcnow", lambda: moment)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sign = dkim.make_signer(key, "magnet1", "example.com")
    plain = dkim.message_bytes(_message())
    messages = [
        plain,
        b"From: A <a@example.com>\r\nTo: b@example.org,\r\n\tc@example.org\r\n"
        b"Subject:  two \t  spaces \r\nX-Odd_Name.1: y\r\nFrom: second@example.com\r\n"
        b"List-Unsubscribe: <https://x/u>,\r\n <mailto:u@x?subject=unsubscribe>\r\n"
        b"To: again@example.org\r\n\r\nbody  line \r\n\r\n",
        b"From: a@example.com\r\nSubject: bare\nTo: b@example.org\r\n\r\nx\ny\r\n",
        b"From: a@example.com\r\nTo: b@example.org\r\n\r\n",
        plain.replace(b"\r\n\r\n", b"\r\n\r\nline\nwith a bare LF\r\n", 1),
    ]
    for message in messages:
        assert sign(message) == _dkimpy_signature(key, message, int(moment.timestamp()))


def test_no_selector_means_no_signer(make_app):
    app = make_app(MAIL_FROM="News <news@example.com>")
    with app.app_context():
        assert dkim.load_signer() is None
        assert dkim.sign_message(_message()).startswith(b"From:")  # unsigned, still sent


class _Answer(list):
    pass


def _resolver(records: dict[tuple[str, str], list]):
    def resolve(name: str, kind: str, lifetime: float = 5.0):
        if (name, kind) not in records:
            raise dns.resolver.NXDOMAIN()
        answer = _Answer()
        for value in records[(name, kind)]:
            if kind == "TXT":
                answer.append(SimpleNamespace(strings=[value[i:i + 255].encode()
                                                       for i in range(0, len(value), 255)]))
            else:
                answer.append(SimpleNamespace(exchange=value + "."))
        return answer
    return resolve


def test_check_reports_found_missing_and_unreachable(make_app, monkeypatch):
    app = make_app(**CONFIG, MAIL_HOST="")
    _published(app)
    with app.app_context():
        value = dkim.dns_record("magnet1", "example.com", dkim.load_key(dkim.key_path("magnet1")))
    records = {("example.com", "TXT"): ["v=spf1 include:_spf.example.net ~all"],
               ("magnet1._domainkey.example.com", "TXT"): [value[1]],
               ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=quarantine"],
               ("example.com", "MX"): ["mx.example.com"]}
    monkeypatch.setattr(dns.resolver, "resolve", _resolver(records))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mail", "check"])
    assert result.exit_code == 0, result.output
    assert "✓ DKIM" in result.output and "✓ DMARC: policy p=quarantine" in result.output
    assert "✓ SPF" in result.output and "✓ Bounces" in result.output

    del records[("_dmarc.example.com", "TXT")]
    records[("magnet1._domainkey.example.com", "TXT")] = ["v=DKIM1; k=rsa; p=AAAA"]
    result = runner.invoke(args=["mail", "check"])
    assert result.exit_code == 1
    assert "✗ DKIM: the record at magnet1._domainkey.example.com holds another key" \
        in result.output
    assert "✗ DMARC: no record at _dmarc.example.com" in result.output
    assert 'fix: add a TXT record _dmarc.example.com = "v=DMARC1; p=none' in result.output

    def unreachable(name: str, kind: str, lifetime: float = 5.0):
        raise dns.exception.Timeout()
    monkeypatch.setattr(dns.resolver, "resolve", unreachable)
    result = runner.invoke(args=["mail", "check"])
    assert result.exit_code == 2
    assert "DNS is unreachable" in result.output and "✗" not in result.output


@pytest.mark.parametrize("record, ok", [("v=spf1 ip4:192.0.2.0/24 -all", True),
                                         ("v=spf1 a mx ~all", None),
                                         ("v=spf1 +all", False)])
def test_spf_against_the_mail_host(app, monkeypatch, record, ok):
    from engine.mail import dkim_commands
    monkeypatch.setattr(dns.resolver, "resolve", _resolver({("example.com", "TXT"): [record]}))
    monkeypatch.setattr(dkim_commands, "_host_addresses",
                        lambda host: [ipaddress.ip_address("192.0.2.7")])
    assert dkim_commands.check_spf("example.com", "smtp.example.com").ok is ok
