"""Run an unmodified Trio application and its test over a lossy virtual network.

``uppercase_app.py`` is an ordinary Trio program (it imports nothing from
trionet): a server on ``trio.serve_tcp``, a client on
``trio.open_tcp_stream`` that finds the server by host name, and a test of
its own. Here they run, untouched, on two trionet hosts joined by a link with
20 ms of delay and 5 % loss each way, in virtual time::

    python3 examples/unmodified_app.py

``open_network(trio_sockets=True)`` installs trionet's ``trio.socket``
factory and resolver for the run; ``host.as_current()`` says which host the
sockets of the tasks started inside it are made on. The output shows the
app's test passing, how long it took in virtual time, and how many frames
the link lost (TCP sent each again; the app never knew).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog
import trio
import trio.testing

import trionet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import uppercase_app  # noqa: E402 - the application under test, found beside this file


async def main() -> None:
    async with trionet.open_network(seed=7, trio_sockets=True) as net:
        client = await net.add_host("client")
        server = await net.add_host("server")
        link = await net.link(client, server, delay=0.020, loss=0.05)
        client.ifconfig(link.ends[0].name, "10.0.0.1/24")
        server.ifconfig(link.ends[1].name, "10.0.0.2/24")
        async with trio.open_nursery() as nursery:
            with server.as_current():
                await nursery.start(uppercase_app.serve)
            start = trio.current_time()
            with client.as_current():
                summary = await uppercase_app.check_app("server")
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        lost = sum(f.statistics().lost for f in link.faults if f is not None)
        print("uppercase_app, unmodified, over client --(20 ms, 5% loss)-- server:")
        print(f"  {summary}: ok")
        print(f"  {elapsed:.3f} s of virtual time; the link lost {lost} frames, and TCP sent them again")


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
