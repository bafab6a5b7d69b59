"""How much one address may write through the beacon, counted cheaply enough for every hit.

The limits hold across every web process: they are counted by the engine's `BlockLimits`
(Redis, one round trip for all of a hit's counters; per process while Redis is away). A round
trip per hit would cost more than the rest of the hit (the reason the hand-over batches events),
so each process counts an address's hits itself and reports them to the shared counters in
blocks of `BLOCK` (or of 1% of the limit, when that is more): an address sending a process
fewer events a minute than a block costs no round trip at all, a busy one a round trip per
block. Within one process a limit is exact; across processes an address can pass it by at
most a block less one per process.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from engine.web.ratelimit import BlockLimits

WINDOW = 60  # seconds: the limits are per minute
BLOCK = 10  # hits a process counts on its own before it reports them to the shared counter
MAX_ADDRESSES = 100_000  # counted per process and minute, so a flood cannot exhaust memory


@lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """Whom a limit counts: an IPv4 address, or an IPv6 client's /64 (one subscriber holds a
    whole /64 and can use any address in it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


class AddressLimits(BlockLimits):
    """This process's counts of the current minute, and the shared counters they feed."""

    def __init__(self) -> None:
        super().__init__(WINDOW, BLOCK, MAX_ADDRESSES)
