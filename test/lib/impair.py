#!/usr/bin/python3
"""A userspace link impairer for the network fault tests (test/lib/impair.ts starts it).

This host's kernel has no sch_netem, so a lossy, slow, reordering link is made here instead: two tun devices
(IFF_TUN | IFF_NO_PI), one in the current (host) network namespace and one inside the named namespace, and
this process forwards every IP packet between them through, per direction:

  - loss: each packet is dropped with probability --loss;
  - a bottleneck of --rate-mbit with a drop-tail queue of at most --queue-ms of data;
  - a one-way delay of --delay-ms +- --jitter-ms (uniform); jitter alone never reorders (like netem with a rate);
  - reordering: with probability --reorder a packet is held back a further --reorder-ms, so later packets
    overtake it.

Everything random comes from one random.Random(--seed): the same seed gives the same decisions for the same
packet sequence. Prints "ready" once both devices exist, and on SIGTERM/SIGINT/exit one line of JSON counters:
{"forwarded":…, "dropped":…, "queueDropped":…, "heldBack":…, "reordered":…, "bytes":…}. "reordered" counts
packets actually delivered after a later packet of the same direction.

Standard library only; Debian's /usr/bin/python3 (3.11 has no os.setns, so setns(2) is called through ctypes).
"""

import argparse
import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def open_tun(name: str) -> int:
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack('16sH22x', name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'setns: {os.strerror(err)}')


def open_tun_in(netns: str, name: str) -> int:
    """Creates the tun device inside the namespace: a tun belongs to the namespace /dev/net/tun was opened in."""
    home = os.open('/proc/self/ns/net', os.O_RDONLY)
    target = os.open(f'/var/run/netns/{netns}', os.O_RDONLY)
    try:
        setns(target)
        try:
            return open_tun(name)
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)


class Direction:
    """One direction of the link: its bottleneck, delay line and counters."""

    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self.link_free = 0.0  # when the bottleneck has sent everything queued
        self.last_arrival = 0.0  # delivery time of the last packet that was not held back
        self.seq = 0
        self.delivered_max = -1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--netns', required=True, help='namespace (ip netns) for the second device')
    p.add_argument('--host-if', required=True)
    p.add_argument('--ns-if', required=True)
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--loss', type=float, default=0.02)
    p.add_argument('--delay-ms', type=float, default=20)
    p.add_argument('--jitter-ms', type=float, default=10)
    p.add_argument('--reorder', type=float, default=0.05)
    p.add_argument('--reorder-ms', type=float, default=15)
    p.add_argument('--rate-mbit', type=float, default=40)
    p.add_argument('--queue-ms', type=float, default=100)
    a = p.parse_args()

    rng = random.Random(a.seed)
    host_fd = open_tun(a.host_if)
    ns_fd = open_tun_in(a.netns, a.ns_if)
    counters = {'forwarded': 0, 'dropped': 0, 'queueDropped': 0, 'heldBack': 0, 'reordered': 0, 'bytes': 0}
    printed = False

    def report(*_: object) -> None:
        nonlocal printed
        if not printed:
            printed = True
            sys.stdout.write(json.dumps(counters) + '\n')
            sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, report)
    signal.signal(signal.SIGINT, report)

    # Packets read from the host device go out of the namespace device, and the other way round.
    directions = {host_fd: Direction(ns_fd), ns_fd: Direction(host_fd)}
    byte_time = 8 / (a.rate_mbit * 1e6)
    queue_limit = a.queue_ms / 1000
    heap: list[tuple[float, int, int, Direction, bytes]] = []
    order = 0  # tie-breaker for packets due at the same moment
    sys.stdout.write('ready\n')
    sys.stdout.flush()

    try:
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                _, _, seq, d, pkt = heapq.heappop(heap)
                try:
                    os.write(d.out_fd, pkt)
                except OSError:
                    continue  # the device is down (its link cut by the test): the packet is lost as on a wire
                counters['forwarded'] += 1
                counters['bytes'] += len(pkt)
                if seq < d.delivered_max:
                    counters['reordered'] += 1
                else:
                    d.delivered_max = seq
            timeout = max(0.0, heap[0][0] - now) if heap else None
            readable, _, _ = select.select([host_fd, ns_fd], [], [], timeout)
            now = time.monotonic()
            for fd in readable:
                d = directions[fd]
                while True:
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if rng.random() < a.loss:
                        counters['dropped'] += 1
                        continue
                    start = max(now, d.link_free)
                    if start - now > queue_limit:
                        counters['queueDropped'] += 1
                        continue
                    d.link_free = start + len(pkt) * byte_time
                    arrival = max(d.link_free + (a.delay_ms + rng.uniform(-a.jitter_ms, a.jitter_ms)) / 1000, d.last_arrival)
                    if rng.random() < a.reorder:
                        counters['heldBack'] += 1
                        arrival += a.reorder_ms / 1000
                    else:
                        d.last_arrival = arrival
                    order += 1
                    heapq.heappush(heap, (arrival, order, d.seq, d, pkt))
                    d.seq += 1
    except Exception:
        import traceback
        traceback.print_exc()
        sys.stdout.write(json.dumps(counters) + '\n')
        sys.stdout.flush()
        os._exit(1)


if __name__ == '__main__':
    main()
