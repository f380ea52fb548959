"""Deleting a thread, a response or a conversation with what belongs to it: the DELETE routes
(api/routes) and the workers' retention (workers/retention.py) share these.

Each deletes the object's own row first, under `guards` (extra conditions on that row): retention
passes "still unused" there, so the check and the delete are one statement and an object put
back to use between the two is left alone. The caller owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import MESSAGES, RUNS, STEPS, THREADS
from core.responses import CONVERSATIONS, ITEMS, RESPONSES


async def remove_thread(conn: AsyncConnection, thread_id: str, *guards: Any) -> bool:
    """The thread with its messages, runs and run steps; False if no row matched."""
    gone = await conn.execute(delete(THREADS).where(THREADS.c.id == thread_id, *guards))
    if not gone.rowcount:
        return False
    for table in (STEPS, RUNS, MESSAGES):
        await conn.execute(delete(table).where(table.c.thread_id == thread_id))
    return True


async def remove_response(conn: AsyncConnection, response_id: str, *guards: Any) -> bool:
    """The response and its items; the items a conversation holds stay in it."""
    gone = await conn.execute(delete(RESPONSES).where(RESPONSES.c.id == response_id, *guards))
    if not gone.rowcount:
        return False
    of_it = ITEMS.c.response_id == response_id
    await conn.execute(
        update(ITEMS).where(of_it, ITEMS.c.conversation_id.is_not(None)).values(response_id=None)
    )
    await conn.execute(delete(ITEMS).where(of_it))
    return True


async def remove_conversation(conn: AsyncConnection, conversation_id: str, *guards: Any) -> bool:
    """The conversation and its items; the items of responses run on it stay theirs."""
    gone = await conn.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.id == conversation_id, *guards))
    if not gone.rowcount:
        return False
    of_it = ITEMS.c.conversation_id == conversation_id
    await conn.execute(
        update(ITEMS).where(of_it, ITEMS.c.response_id.is_not(None)).values(conversation_id=None)
    )
    await conn.execute(delete(ITEMS).where(of_it))
    return True
