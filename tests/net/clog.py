"""Clogging a TCP stream for Trio's ``clogged_stream_maker``."""

from __future__ import annotations

import trio

import trionet


async def clog(stream: trionet.TcpStream) -> None:
    """Fill the peer's receive window and our send buffer: send what fits
    until nothing does, even after the ACKs in flight arrived. (Not by
    cancelling a send_all: one cancelled part-way breaks the stream.)"""
    conn = stream._pcb.peek()
    while True:
        if conn.send_space:
            await stream.send_all(b"x" * conn.send_space)
            continue
        await trio.sleep(1)
        if not conn.send_space:
            return


async def clogged_both_ways(client: trionet.TcpStream, server: trionet.TcpStream) -> None:
    """Clog both directions (Trio's suite flips the pair). Data one way
    carries ACKs that free space the other way, so repeat until both send
    buffers stay full."""
    while client._pcb.peek().send_space or server._pcb.peek().send_space:
        await clog(client)
        await clog(server)
