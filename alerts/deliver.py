"""Delivering alerts: a signed webhook POST, an email in Spanish, retries, a dead letter.

Each pending delivery of the book is tried up to ``attempts`` times, waiting ``backoff``
seconds and doubling between tries; after the last failure it is ``dead`` with its error
(``cuadra alerts list`` shows it). A webhook receives the alert as JSON with
``X-Cuadra-Signature: sha256=<HMAC-SHA256 of the body with the subscription's secret>``
and ``X-Cuadra-Alert`` (the alert's id: a receiver can drop a repeat), and succeeds on 2xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from alerts.book import DEAD, DELIVERED, Book, now

SIGNATURE = "X-Cuadra-Signature"
HOT = {"new_hot": "nuevo", "intensifying_hot": "en intensificación"}
ALERT_ID = "X-Cuadra-Alert"


@dataclass(frozen=True)
class Smtp:
    """An SMTP server to send alert mail through."""

    host: str
    port: int = 25
    sender: str = "cuadra@localhost"
    user: str | None = None
    password: str | None = None
    starttls: bool = False


@dataclass(frozen=True)
class Delivery:
    """How alerts leave: mail server, retries, timeouts."""

    smtp: Smtp | None = None
    attempts: int = 5
    backoff: float = 2.0  # seconds before the second try; doubles after
    timeout: float = 10.0


def signature(secret: str, body: bytes) -> str:
    """The webhook signature header's value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    book: Book, config: Delivery, sleep: Callable[[float], None] = time.sleep
) -> dict[str, int]:
    """Send every pending delivery; how many were delivered and how many are dead."""
    done = {DELIVERED: 0, DEAD: 0}
    subs = {s.id: s for s in book.subscriptions(active=True)}
    for item in book.deliveries("pending"):
        sub = subs.get(item["subscription"])
        attempts, error = int(item["attempts"]), None
        while attempts < config.attempts:
            if attempts:
                sleep(config.backoff * 2 ** (attempts - 1))
            attempts += 1
            try:
                if sub is None:
                    raise RuntimeError("the subscription was removed")
                _send(item["channel"], sub, item["alert"], item["body"], config)
                error = None
                break
            except (OSError, RuntimeError, smtplib.SMTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
        status = DELIVERED if error is None else DEAD
        book.settle(item["alert"], item["channel"], status, attempts, error, now())
        done[status] += 1
    return done


def _send(channel: str, sub: Any, alert: str, body: dict[str, Any], config: Delivery) -> None:
    if channel == "webhook":
        _webhook(sub.webhook_url, sub.webhook_secret or "", alert, body, config.timeout)
    elif channel == "email":
        if config.smtp is None:
            raise RuntimeError("no SMTP server configured (CUADRA_SMTP_HOST)")
        _mail(config.smtp, sub.email, body, config.timeout)
    else:
        raise RuntimeError(f"unknown channel {channel!r}")


def _webhook(url: str, secret: str, alert: str, body: dict[str, Any], timeout: float) -> None:
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Cuadra-alerts",
        SIGNATURE: signature(secret, data),
        ALERT_ID: alert,
    }
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (http(s) only, checked on subscribing)
            if not 200 <= answer.status < 300:
                raise RuntimeError(f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}") from None


def _mail(smtp: Smtp, to: str, body: dict[str, Any], timeout: float) -> None:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject(body)
    message.set_content(text(body))
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        client.send_message(message)


def place_text(body: dict[str, Any]) -> str:
    """The alert's place in words."""
    place = body["place"]
    if "unit" in place:
        return f"{place['unit']} {place.get('name') or place['id']}"
    if "circle" in place:
        lon, lat, metres = place["circle"]
        return f"{metres:,.0f} m alrededor de {lat:.5f}, {lon:.5f}"
    return "el área dibujada"


def subject(body: dict[str, Any]) -> str:
    """An alert's subject line, in Spanish."""
    if body["rule"] == "any_new":
        return f"Cuadra: nuevos registros en {place_text(body)}"
    if body["rule"] == "hotspot":
        return f"Cuadra: {place_text(body)} es un punto caliente {HOT[body['category']]}"
    return f"Cuadra: aumento de incidentes en {place_text(body)} ({body['period']})"


def text(body: dict[str, Any]) -> str:
    """An alert's message, in Spanish (Mexico's number format)."""
    chosen = ", ".join(body["categories"] + body["offenses"]) or "todos los delitos"
    if body["rule"] == "hotspot":
        lead = (
            f"{place_text(body)} es un punto caliente {HOT[body['category']]} de {chosen} "
            f"al cierre de {body['period']} (análisis de puntos calientes emergentes: Gi* "
            "espacio-temporal y tendencia de Mann-Kendall de los últimos 24 meses)."
        )
    elif body["rule"] == "any_new":
        lead = (
            f"La instantánea {body['snapshot']} trajo {body['new_records']:,} registros nuevos "
            f"de {chosen} en {place_text(body)}."
        )
    else:
        lead = (
            f"En {place_text(body)} se registraron {body['observed']:,} incidentes de {chosen} "
            f"en el periodo {body['period']}; según su propia historia se esperaban "
            f"{body['expected']:,.1f} (probabilidad de un valor así o mayor: {body['p']:.4f}, "
            f"umbral {body['alpha']:g})."
        )
    return (
        f"{lead}\n\nVer en el mapa: {body['map']}\n\n"
        f"Suscripción {body['subscription']} · instantánea {body['snapshot']}.\n"
        "Mensaje automático de Cuadra.\n"
    )


def send_test(sub: Any, config: Delivery, base_url: str) -> dict[str, str | None]:
    """A test message on each of a subscription's channels: channel → None or the error."""
    body = {
        "subscription": sub.id,
        "rule": "any_new",
        "period": "test",
        "snapshot": 0,
        "place": sub.place,
        "categories": list(sub.categories),
        "offenses": list(sub.offenses),
        "new_records": 0,
        "map": f"{base_url.rstrip('/')}/map",
        "test": True,
    }
    results: dict[str, str | None] = {}
    for channel, on in (("webhook", sub.webhook_url), ("email", sub.email)):
        if not on:
            continue
        try:
            _send(channel, sub, f"{sub.id}:test", body, config)
            results[channel] = None
        except (OSError, RuntimeError, smtplib.SMTPException) as exc:
            results[channel] = f"{type(exc).__name__}: {exc}"
    return results
