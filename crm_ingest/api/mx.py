"""The optional MX check of a form's email address (`mx_check = true`): does the domain receive
mail at all?

email-validator's deliverability check does the lookup (MX, then the A/AAAA fallback of RFC 5321,
a null MX of RFC 7505 meaning no mail). Only a definite answer refuses: a domain that does not
exist or says it takes no mail. A lookup that times out or fails on our side accepts the address,
since a slow resolver must not cost a genuine lead. Verdicts are kept an hour per domain, so a
flood naming one domain costs one lookup.
"""
from __future__ import annotations

import threading
import time

import dns.exception
import dns.nameserver
import dns.resolver
from email_validator import EmailUndeliverableError
from email_validator.deliverability import validate_email_deliverability

from crm_ingest.ingest.endpoints import ApiConfig

VERDICT_SECONDS = 3600
MAX_DOMAINS = 10_000

_verdicts: dict[str, tuple[bool, float]] = {}
_lock = threading.Lock()
_resolvers: dict[tuple[tuple[str, ...], float], dns.resolver.Resolver] = {}


def receives_mail(address: str, api: ApiConfig) -> bool:
    """False only when DNS says for certain that the address's domain takes no mail."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False  # not a name DNS can hold
    now = time.monotonic()
    with _lock:
        known = _verdicts.get(domain)
    if known and known[1] > now:
        return known[0]
    verdict = _lookup(domain, api)
    if verdict is not None:
        with _lock:
            if len(_verdicts) >= MAX_DOMAINS:
                _verdicts.clear()
            _verdicts[domain] = (verdict, now + VERDICT_SECONDS)
    return verdict is not False


def _lookup(domain: str, api: ApiConfig) -> bool | None:
    """True: takes mail; False: certainly not; None: no answer (timeout, failing resolver)."""
    try:
        info = validate_email_deliverability(domain, domain, dns_resolver=_resolver(api))
    except EmailUndeliverableError as exc:
        # NXDOMAIN, a null MX, no MX/A/AAAA, "v=spf1 -all" without MX; anything else it met
        # on the way is "an error while checking", which is ours, not the address's
        return None if "error while checking" in str(exc) else False
    except dns.exception.DNSException:
        return None
    return None if "unknown-deliverability" in info else True


def _resolver(api: ApiConfig) -> dns.resolver.Resolver:
    key = (api.dns_servers, api.dns_timeout_seconds)
    with _lock:
        resolver = _resolvers.get(key)
        if resolver is None:
            if api.dns_servers:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [_nameserver(s) for s in api.dns_servers]
            else:
                resolver = dns.resolver.Resolver()
            resolver.lifetime = api.dns_timeout_seconds
            resolver.timeout = api.dns_timeout_seconds
            _resolvers[key] = resolver
    return resolver


def _nameserver(server: str) -> dns.nameserver.Do53Nameserver:
    host, port = server, 53
    if server.count(":") == 1:  # "host:port"; a bare IPv6 address has more colons
        host, _, given = server.partition(":")
        port = int(given)
    return dns.nameserver.Do53Nameserver(host.strip("[]"), port)


def forget() -> None:
    """Drop the cached verdicts and resolvers (configuration changed; tests)."""
    with _lock:
        _verdicts.clear()
        _resolvers.clear()
