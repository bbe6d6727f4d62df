"""Typing indicators: the built-in notice, declared through :mod:`chalicelib.extend` as a
team's own actions are.

``{"action": "typing", "room": "lobby"}`` tells the room's other member
connections who is typing, ``{"type": "typing", "room", "userId"}``; nothing is
stored. It needs the ``join`` permission and membership of the room. A notice:
answered (``ack`` with ``delivered``) only when the frame carries an ``id``,
or refused.
"""

from __future__ import annotations

from chalicelib.extend import JOIN, NOTICE, Answer, Context, Room, action


@action("typing", fields={"room": Room()}, needs=JOIN, member=True, kind=NOTICE)
def typing(ctx: Context, room: str) -> Answer:
    delivered = ctx.publish({"type": "typing", "room": room, "userId": ctx.user_id})
    return ctx.ack(delivered=delivered)
