"""Each subscription's alerts as an Atom feed (feedgen), for any feed reader to follow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feedgen.feed import FeedGenerator

from alerts.book import Subscription
from alerts.deliver import place_text, subject, text


def atom(sub: Subscription, alerts: list[dict[str, Any]], self_url: str) -> bytes:
    """The Atom document of a subscription's alerts, newest first."""
    feed = FeedGenerator()
    feed.id(f"urn:cuadra:subscription:{sub.id}")
    feed.title(f"Cuadra: alertas de {place_text({'place': sub.place})}")
    feed.author({"name": "Cuadra"})
    feed.link(href=self_url, rel="self")
    feed.language("es")
    feed.updated(datetime.fromisoformat(alerts[0]["created"] if alerts else sub.created))
    for alert in reversed(alerts):  # feedgen puts the last added first
        entry = feed.add_entry()
        entry.id(f"urn:cuadra:alert:{alert['id']}")
        entry.title(subject(alert["body"]))
        entry.updated(datetime.fromisoformat(alert["created"]))
        entry.link(href=alert["body"]["map"])
        entry.content(text(alert["body"]), type="text")
    out: bytes = feed.atom_str(pretty=True)
    return out
