"""Channels from the settings: failover order as written, one-line errors that name the missing
settings and never show a secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine

from alerting.notify.channels import ChannelConfigError, build_channels, channel_names
from core.clock import ManualClock
from core.settings import Settings


def test_the_demo_default_is_the_outbox() -> None:
    assert [c.name for c in build_channels(Settings(), create_engine("sqlite://"), ManualClock(0))] == [
        "outbox"
    ]


def test_channels_in_failover_order_with_their_credentials() -> None:
    s = Settings(
        notify_channels="tencent, aliyun",
        notify_aliyun_access_key_id="id",
        notify_aliyun_access_key_secret=SecretStr("ali-secret"),
        notify_aliyun_sign_name="卫健局",
        notify_aliyun_template_code="SMS_1",
        notify_tencent_secret_id="sid",
        notify_tencent_secret_key=SecretStr("tc-secret"),
        notify_tencent_sdk_app_id="1400000000",
        notify_tencent_sign_name="卫健局",
        notify_tencent_template_id="100",
    )
    channels = build_channels(s, create_engine("sqlite://"), ManualClock(0))
    assert [c.name for c in channels] == ["tencent", "aliyun"]
    shown = repr(channels) + repr(s) + str(s.model_dump())
    assert "ali-secret" not in shown and "tc-secret" not in shown


def test_missing_credentials_name_the_settings_not_their_values() -> None:
    s = Settings(notify_channels="twilio", notify_twilio_auth_token=SecretStr("tok-123"))
    with pytest.raises(ChannelConfigError) as err:
        build_channels(s, create_engine("sqlite://"), ManualClock(0))
    assert str(err.value) == (
        "notification channel 'twilio' needs "
        "CHAINWATCH_NOTIFY_TWILIO_ACCOUNT_SID, CHAINWATCH_NOTIFY_TWILIO_FROM"
    )


def test_unknown_or_repeated_channels_are_refused() -> None:
    with pytest.raises(ChannelConfigError, match="unknown notification channel"):
        channel_names(Settings(notify_channels="outbox,pager"))
    with pytest.raises(ChannelConfigError, match="twice"):
        channel_names(Settings(notify_channels="outbox,outbox"))
