"""Sealed secrets: encrypted under SECRET_KEY, opened by it or its fallbacks, resealed on demand."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from notify import services
from notify.models import NotificationChannel
from valhalla_ops import sealing
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

OLD_KEY = "old-secret-key-" + "a" * 40
NEW_KEY = "new-secret-key-" + "b" * 40


def test_a_sealed_value_opens_and_never_shows_the_plaintext():
    first, second = sealing.seal("whsec_abc"), sealing.seal("whsec_abc")

    assert "whsec_abc" not in first
    assert first != second  # a fresh IV each time
    assert sealing.is_sealed(first)
    assert sealing.unseal(first) == sealing.unseal(second) == "whsec_abc"


def test_a_fallback_key_opens_values_sealed_before_a_rotation(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    token = sealing.seal("whsec_abc")

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert sealing.unseal(token) == "whsec_abc"

    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(sealing.SecretUnreadable, match="SECRET_KEY_FALLBACKS"):
        sealing.unseal(token)


def test_a_tampered_token_does_not_open():
    token = sealing.seal("whsec_abc")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]

    with pytest.raises(sealing.SecretUnreadable):
        sealing.unseal(tampered)


def reseal(*args: str) -> str:
    out = StringIO()
    call_command("reseal_secrets", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_reseal_secrets_moves_every_secret_to_the_new_key(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    channels = [
        services.create_channel(
            actor=SYSTEM, name=f"hook-{n}", channel_type="webhook", target="https://example.com/h"
        )
        for n in range(3)
    ]
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]

    output = reseal()
    settings.SECRET_KEY_FALLBACKS = []  # the old key is gone: the new one alone must open them

    assert "notify.NotificationChannel.secret: 3 resealed, 0 unreadable" in output
    for channel, secret in channels:
        assert NotificationChannel.objects.get(pk=channel.pk).secret == secret
    row = SystemLog.objects.get(action="system.reseal_secrets")
    assert row.actor == "manage.py reseal_secrets"
    assert row.context["resealed"] == 3


@pytest.mark.django_db
def test_reseal_secrets_names_the_rows_no_key_opens(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    lost, _ = services.create_channel(
        actor=SYSTEM, name="lost", channel_type="webhook", target="https://example.com/h"
    )
    settings.SECRET_KEY = NEW_KEY
    kept, kept_secret = services.create_channel(
        actor=SYSTEM, name="kept", channel_type="webhook", target="https://example.com/h"
    )

    with pytest.raises(CommandError, match=rf"NotificationChannel.secret rows {lost.pk}\b"):
        reseal()

    assert NotificationChannel.objects.get(pk=kept.pk).secret == kept_secret
    assert SystemLog.objects.filter(action="system.reseal_secrets").count() == 1
