"""The channels named in ``CHAINWATCH_NOTIFY_CHANNELS`` (in failover order), built from the settings.
A channel whose credentials are missing is a configuration error, reported in one line naming the
settings to set — never with their values."""

from __future__ import annotations

from sqlalchemy import Engine

from alerting.notify.aliyun import AliyunSmsNotifier
from alerting.notify.base import Notifier
from alerting.notify.outbox import OutboxNotifier
from alerting.notify.tencent import TencentSmsNotifier
from alerting.notify.twilio import TwilioSmsNotifier
from alerting.notify.webhook import WebhookNotifier
from core.clock import Clock
from core.settings import Settings

KNOWN = ("outbox", "aliyun", "tencent", "twilio", "webhook")


class ChannelConfigError(ValueError):
    pass


def _require(settings: Settings, channel: str, *names: str) -> None:
    missing = []
    for name in names:
        value = getattr(settings, name)
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if not text:
            missing.append(f"CHAINWATCH_{name.upper()}")
    if missing:
        raise ChannelConfigError(f"notification channel {channel!r} needs {', '.join(missing)}")


def channel_names(settings: Settings) -> list[str]:
    names = [n.strip().lower() for n in settings.notify_channels.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ChannelConfigError(
            f"unknown notification channel(s) {', '.join(unknown)} in CHAINWATCH_NOTIFY_CHANNELS "
            f"(known: {', '.join(KNOWN)})"
        )
    if len(set(names)) != len(names):
        raise ChannelConfigError("CHAINWATCH_NOTIFY_CHANNELS names a channel twice")
    return names or ["outbox"]


def build_channels(settings: Settings, sql: Engine, clock: Clock) -> list[Notifier]:
    out: list[Notifier] = []
    for name in channel_names(settings):
        if name == "outbox":
            out.append(OutboxNotifier(sql, clock))
        elif name == "aliyun":
            _require(
                settings,
                name,
                "notify_aliyun_access_key_id",
                "notify_aliyun_access_key_secret",
                "notify_aliyun_sign_name",
                "notify_aliyun_template_code",
            )
            out.append(
                AliyunSmsNotifier(
                    settings.notify_aliyun_access_key_id,
                    settings.notify_aliyun_access_key_secret.get_secret_value(),
                    sign_name=settings.notify_aliyun_sign_name,
                    template_code=settings.notify_aliyun_template_code,
                    endpoint=settings.notify_aliyun_endpoint,
                    clock=clock,
                )
            )
        elif name == "tencent":
            _require(
                settings,
                name,
                "notify_tencent_secret_id",
                "notify_tencent_secret_key",
                "notify_tencent_sdk_app_id",
                "notify_tencent_sign_name",
                "notify_tencent_template_id",
            )
            out.append(
                TencentSmsNotifier(
                    settings.notify_tencent_secret_id,
                    settings.notify_tencent_secret_key.get_secret_value(),
                    sdk_app_id=settings.notify_tencent_sdk_app_id,
                    sign_name=settings.notify_tencent_sign_name,
                    template_id=settings.notify_tencent_template_id,
                    region=settings.notify_tencent_region,
                    endpoint=settings.notify_tencent_endpoint,
                    clock=clock,
                )
            )
        elif name == "twilio":
            _require(
                settings, name, "notify_twilio_account_sid", "notify_twilio_auth_token", "notify_twilio_from"
            )
            out.append(
                TwilioSmsNotifier(
                    settings.notify_twilio_account_sid,
                    settings.notify_twilio_auth_token.get_secret_value(),
                    sender=settings.notify_twilio_from,
                    endpoint=settings.notify_twilio_endpoint,
                )
            )
        elif name == "webhook":
            _require(settings, name, "notify_webhook_url", "notify_webhook_secret")
            out.append(
                WebhookNotifier(
                    settings.notify_webhook_url, settings.notify_webhook_secret.get_secret_value()
                )
            )
    return out
