"""Deleting a thread, a response or a conversation with what belongs to it: the DELETE routes
(api/routes) and the workers' retention (workers/retention.py) share these.

Each deletes the object's own row first, under `guards` (extra conditions on that row): retention
passes "still unused" there, so the check and the delete are one statement and an object put
back to use between the two is left alone. The caller owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import MESSAGES, RUNS, STEPS, THREADS
from core.responses import CONVERSATIONS, ITEMS, RESPONSES


async def remove_thread(conn: AsyncConnection, thread_id: str, *guards: Any) -> bool:
    """The thread with its messages, runs and run steps; False if no row matched."""
    if not await _delete_row(conn, THREADS, thread_id, guards):
        return False
    for table in (STEPS, RUNS, MESSAGES):
        await conn.execute(delete(table).where(table.c.thread_id == thread_id))
    return True


async def remove_response(conn: AsyncConnection, response_id: str, *guards: Any) -> bool:
    """The response and its items; the items a conversation holds stay in it."""
    if not await _delete_row(conn, RESPONSES, response_id, guards):
        return False
    await _drop_items(conn, ITEMS.c.response_id, ITEMS.c.conversation_id, response_id)
    return True


async def remove_conversation(conn: AsyncConnection, conversation_id: str, *guards: Any) -> bool:
    """The conversation and its items; the items of responses run on it stay theirs."""
    if not await _delete_row(conn, CONVERSATIONS, conversation_id, guards):
        return False
    await _drop_items(conn, ITEMS.c.conversation_id, ITEMS.c.response_id, conversation_id)
    return True


async def _delete_row(conn: AsyncConnection, table: Table, object_id: str, guards: tuple[Any, ...]) -> bool:
    gone = await conn.execute(delete(table).where(table.c.id == object_id, *guards))
    return bool(gone.rowcount)


async def _drop_items(conn: AsyncConnection, mine: Column[Any], other: Column[Any], object_id: str) -> None:
    """An object's items go, but for those the other owner (a response's conversation, a
    conversation's response) also holds: they only lose their link to this one."""
    of_it = mine == object_id
    await conn.execute(update(ITEMS).where(of_it, other.is_not(None)).values({mine.name: None}))
    await conn.execute(delete(ITEMS).where(of_it))
