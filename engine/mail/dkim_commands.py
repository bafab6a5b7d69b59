"""`magnet mail dkim-keygen` and `magnet mail check`: make the signing key and see whether the
DNS records receivers look up (SPF, DKIM, DMARC, the bounce domain's MX) are in place.

The check reads DNS with dnspython. It only reports: an unreachable resolver is said plainly
(and exits 2) rather than reported as missing records, which would send an owner to fix DNS
that is fine. A record that is missing or wrong exits 1, so it can run in a deploy script.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from email.utils import parseaddr

import click
import dns.exception
import dns.resolver
from flask import current_app

from engine.mail import dkim
from engine.mail.settings import transport_config
from engine.mail.tokens import bounce_domain

LIFETIME = 5.0  # seconds for each DNS question


class Unreachable(Exception):
    """No answer from DNS at all (no resolver configured, timeout, every server failing)."""


@dataclass
class Finding:
    ok: bool | None  # None: cannot tell
    label: str
    detail: str
    fix: str = ""


@click.command("dkim-keygen")
@click.option("--selector", required=True, help="The DKIM selector, e.g. magnet1.")
@click.option("--domain", default="", help="Signing domain (default: MAIL_DKIM_DOMAIN or "
              "the domain of MAIL_FROM).")
@click.option("--force", is_flag=True, help="Replace an existing key for this selector.")
def dkim_keygen(selector: str, domain: str, force: bool) -> None:
    """Make a 2048-bit DKIM key in instance/dkim/ and print its DNS record."""
    try:
        selector = dkim.check_selector(selector)
        path = dkim.generate(selector, force=force)
    except (ValueError, dkim.KeyExists) as exc:
        raise click.ClickException(str(exc)) from None
    domain = (domain or dkim.signing_domain()).strip().lower()
    if "." not in domain or domain.endswith((".localhost", ".local")):
        click.echo(f"Note: {domain!r} is not a domain on the internet: set MAIL_FROM to an "
                   "address of your domain (or MAIL_DKIM_DOMAIN), or pass --domain, and "
                   "publish the record under that domain.\n", err=True)
    name, value = dkim.dns_record(selector, domain, dkim.load_key(path))
    quoted = " ".join(f'"{part}"' for part in dkim.dns_strings(value))
    click.echo(f"Key written to {path} (readable by its owner only).\n")
    click.echo("Publish this TXT record in the DNS of your domain:\n")
    click.echo(f"  Name:  {name}")
    click.echo("  Type:  TXT")
    click.echo(f"  Value: {quoted}\n")
    click.echo("(DNS panels that take one value want it without the quotes, in one piece:\n"
               f"  {value} )\n")
    if dkim.selector() != selector:
        click.echo(f'Then sign with it: set mail_dkim_selector = "{selector}" in '
                   f"instance/magnet.toml (or MAGNET_MAIL_DKIM_SELECTOR={selector}).")
    click.echo("Run `magnet mail check` once the record is published.")


def _txt(name: str) -> list[str]:
    """The TXT strings of `name` (each record's parts joined); [] when there are none."""
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=LIFETIME)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers,
            dns.resolver.NoResolverConfiguration, dns.resolver.LifetimeTimeout) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def _mx(name: str) -> list[str]:
    try:
        answer = dns.resolver.resolve(name, "MX", lifetime=LIFETIME)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers,
            dns.resolver.NoResolverConfiguration) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from None
    return [str(record.exchange).rstrip(".") for record in answer]


def _host_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(info[4][0])
                for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (OSError, ValueError):
        return []


def check_spf(domain: str, mail_host: str) -> Finding:
    """The domain's SPF record, and whether it names the configured SMTP host: by its address
    in an ip4/ip6 mechanism, or by an include: of the host's own domain (how ESPs document it,
    e.g. include:sendgrid.net for smtp.sendgrid.net). Other mechanisms (a, mx, redirect) are
    not followed: then it cannot tell."""
    records = [r for r in _txt(domain) if r.lower().startswith("v=spf1")]
    if not records:
        return Finding(False, "SPF", f"no SPF record on {domain}",
                       f'add a TXT record on {domain}: "v=spf1 include:<your provider> ~all" '
                       "(your mail provider documents its include)")
    if len(records) > 1:
        return Finding(False, "SPF", f"{len(records)} SPF records on {domain} (receivers then "
                       "treat SPF as broken)", "merge them into one record")
    record = records[0]
    terms = record.split()[1:]
    if "+all" in terms or "all" in terms:
        return Finding(False, "SPF", f"{record!r} lets anyone send as {domain}",
                       "end the record with ~all or -all")
    if not mail_host or mail_host in ("localhost", "127.0.0.1", "::1"):
        return Finding(True, "SPF", f"{record!r} (no MAIL_HOST set, so not checked against it)")
    addresses = _host_addresses(mail_host)
    for term in terms:
        kind, _, value = term.lstrip("+").partition(":")
        if kind in ("ip4", "ip6") and value:
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                continue
            if any(address in network for address in addresses):
                return Finding(True, "SPF", f"{record!r} includes {mail_host} ({term})")
        base = ".".join(value.split(".")[-2:])  # include:_spf.sendgrid.net -> sendgrid.net
        if kind == "include" and value and (mail_host == base or mail_host.endswith("." + base)):
            return Finding(True, "SPF", f"{record!r} includes {mail_host}'s provider ({term})")
    return Finding(None, "SPF", f"{record!r}: cannot tell whether it covers {mail_host}",
                   f"make sure it names {mail_host} (its ip4: addresses or its provider's "
                   "include:)")


def check_dkim(domain: str) -> Finding:
    name = dkim.selector()
    if not name:
        return Finding(False, "DKIM", "no key configured (MAIL_DKIM_SELECTOR is empty)",
                       "run `magnet mail dkim-keygen --selector magnet1`, publish the record "
                       "it prints and set MAIL_DKIM_SELECTOR")
    path = dkim.key_path(name)
    if not path.exists():
        return Finding(False, "DKIM", f"MAIL_DKIM_SELECTOR is {name!r} but {path} is missing: "
                       "mail goes out unsigned",
                       f"run `magnet mail dkim-keygen --selector {name}`")
    key = dkim.load_key(path)
    record_name, expected = dkim.dns_record(name, domain, key)
    records = [r for r in _txt(record_name) if "p=" in r]
    if not records:
        return Finding(False, "DKIM", f"no record at {record_name}",
                       f'add a TXT record {record_name} = "{expected}"')
    published = {part.strip().split("=", 1)[0]: part.strip().split("=", 1)[-1]
                 for part in records[0].split(";") if "=" in part}
    if "".join(published.get("p", "").split()) != dkim.public_key_base64(key):
        return Finding(False, "DKIM", f"the record at {record_name} holds another key",
                       f'replace it with "{expected}"')
    return Finding(True, "DKIM", f"{record_name} publishes our key")


def check_dmarc(domain: str) -> Finding:
    records = [r for r in _txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")]
    suggestion = (f'add a TXT record _dmarc.{domain} = "v=DMARC1; p=none; '
                  f'rua=mailto:dmarc@{domain}" (tighten p= to quarantine later)')
    if not records:
        return Finding(False, "DMARC", f"no record at _dmarc.{domain}", suggestion)
    tags = {part.strip().split("=", 1)[0].lower(): part.strip().split("=", 1)[-1].strip()
            for part in records[0].split(";") if "=" in part}
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding(False, "DMARC", f"the record has no valid policy: {records[0]!r}",
                       suggestion)
    note = " (monitoring only: enough for Gmail and Yahoo)" if policy == "none" else ""
    return Finding(True, "DMARC", f"policy p={policy}{note}")


def check_mx(domain: str) -> Finding:
    hosts = _mx(domain)
    if not hosts:
        return Finding(False, "Bounces", f"no MX record on {domain}: bounces cannot come back",
                       f"add an MX record on {domain} for the mailbox `magnet mail bounces` "
                       "reads, or set MAIL_BOUNCE_DOMAIN")
    return Finding(True, "Bounces", f"{domain} receives mail at {', '.join(sorted(hosts))}")


def check_alignment(from_domain: str, signing_domain: str) -> Finding:
    aligned = (from_domain == signing_domain or from_domain.endswith("." + signing_domain)
               or signing_domain.endswith("." + from_domain))
    if aligned:
        return Finding(True, "Alignment", f"DKIM d={signing_domain} matches From {from_domain}")
    return Finding(False, "Alignment", f"DKIM d={signing_domain} does not match the From "
                   f"domain {from_domain}: DMARC fails", "sign with the From domain "
                   "(MAIL_DKIM_DOMAIN)")


@click.command("check")
@click.option("--domain", default="", help="Sending domain (default: the domain of MAIL_FROM).")
def check(domain: str) -> None:
    """Report SPF, DKIM, DMARC and the bounce MX for the sending domain."""
    config = current_app.config
    from_domain = parseaddr(transport_config()["MAIL_FROM"])[1].rpartition("@")[2].lower()
    domain = (domain or from_domain).strip().lower().rstrip(".")
    if not domain or domain == "localhost":
        raise click.ClickException("no sending domain: set MAIL_FROM to an address of your "
                                   "domain or pass --domain")
    signing = str(config.get("MAIL_DKIM_DOMAIN") or "").strip().lower() or domain
    # The bounce domain is MAIL_FROM's unless set apart; a domain asked for stands for it.
    bounces = str(config.get("MAIL_BOUNCE_DOMAIN") or "").strip().lower() or (
        domain if domain != from_domain else bounce_domain())
    try:
        findings = [check_spf(domain, str(config.get("MAIL_HOST") or "").strip().lower()),
                    check_dkim(signing)]
        if dkim.selector():  # alignment means something only once mail is signed
            findings.append(check_alignment(domain, signing))
        findings += [check_dmarc(domain), check_mx(bounces)]
    except Unreachable as exc:
        click.echo(f"DNS is unreachable from this machine ({exc}): nothing was checked. "
                   "Check the network or /etc/resolv.conf and run this again.", err=True)
        raise SystemExit(2) from None
    click.echo(f"Mail DNS for {domain}:")
    for finding in findings:
        mark = {True: "✓", False: "✗", None: "?"}[finding.ok]
        click.echo(f"  {mark} {finding.label}: {finding.detail}")
        if finding.fix and finding.ok is not True:
            click.echo(f"      fix: {finding.fix}")
    if any(finding.ok is False for finding in findings):
        raise SystemExit(1)
