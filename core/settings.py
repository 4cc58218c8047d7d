"""One typed settings object for every ChainWatch service (env vars ``CHAINWATCH_*``, optional ``.env``).

The defaults run the demo on one machine: Mosquitto and InfluxDB on loopback ports of our own
(not the system defaults, so a system broker or database does not get in the way), files under
``./.chainwatch``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAINWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".chainwatch"), description="local services, spool and SQLite")
    mqtt_url: str = "mqtt://127.0.0.1:18830"
    # the broker login of the collector and alerting services (production: one account each, made by
    # `chainwatch deploy mosquitto-auth`); empty: anonymous, as the local demo broker allows
    mqtt_username: str = ""
    mqtt_password: SecretStr = SecretStr("")
    # the simulator's gateways log in with the passwords of this CSV (site,device,password; from
    # `chainwatch deploy mosquitto-auth`): the demo against a production broker
    mqtt_device_passwords_file: Path | None = None
    influx_url: str = "http://127.0.0.1:18086"
    influx_db: str = "chainwatch"
    influx_username: str = ""
    influx_password: str = ""
    database_url: str = ""  # empty: SQLite file in data_dir
    web_port: int = 8080
    web_host: str = "127.0.0.1"  # where `chainwatch web` listens; 0.0.0.0 in a container
    # reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or networks, e.g.
    # "127.0.0.1,10.0.0.0/8"): the login rate limit and the audit log then see the real client's address
    web_trusted_proxies: str = ""
    registry_file: Path | None = None  # empty: the demo district shipped with ChainWatch

    # collector
    collector_client_id: str = "chainwatch-collector"
    collector_shared_group: str = ""  # set to run several collectors on one $share/{group}/ subscription
    collector_receive_maximum: int = 20000  # messages in flight (unacknowledged) at once: bounds memory
    collector_batch_lines: int = 5000
    collector_batch_seconds: float = 1.0
    collector_write_timeout_s: float = 10.0
    collector_write_attempts: int = 3  # before a batch goes to the spool
    future_tolerance_s: float = 600.0  # readings further in the future than this are rejected
    collector_stats_every_s: float = 60.0  # the collector's own numbers to InfluxDB (collector_stats)

    # alerting
    alerting_client_id: str = "chainwatch-alerting"  # its own persistent session, apart from the collector's
    alerting_tick_s: float = 60.0  # time-driven rules (device offline) run this often
    alerting_checks: bool = True  # the twice-daily check reminders (a person confirms each fridge)
    alerting_registry_check_s: float = 30.0  # a changed registry (web admin, registry load) is read this soon

    # notifications (alerting/notify): channels in failover order, e.g. "aliyun,tencent"; "outbox" (the
    # demo's default) stores messages for the web pages and sends nothing. Secrets are SecretStr: never
    # shown in a repr, a log line or an error.
    notify_channels: str = "outbox"
    notify_aliyun_access_key_id: str = ""
    notify_aliyun_access_key_secret: SecretStr = SecretStr("")
    notify_aliyun_sign_name: str = ""
    notify_aliyun_template_code: str = ""
    notify_aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    notify_tencent_secret_id: str = ""
    notify_tencent_secret_key: SecretStr = SecretStr("")
    notify_tencent_sdk_app_id: str = ""
    notify_tencent_sign_name: str = ""
    notify_tencent_template_id: str = ""
    notify_tencent_region: str = "ap-guangzhou"
    notify_tencent_endpoint: str = "https://sms.tencentcloudapi.com/"
    notify_twilio_account_sid: str = ""
    notify_twilio_auth_token: SecretStr = SecretStr("")
    notify_twilio_from: str = ""  # a Twilio number (E.164) or a Messaging Service SID (MG...)
    notify_twilio_endpoint: str = "https://api.twilio.com"
    notify_webhook_url: str = ""
    notify_webhook_secret: SecretStr = SecretStr("")
    notify_tick_s: float = 15.0  # escalations, reminders and retries are looked at this often
    notify_group_wait_s: float = 30.0  # notices of one clinic for one person within this go in one SMS
    notify_rate_limit: int = 10  # SMS per phone per window; the overflow goes out as one digest
    notify_rate_window_min: float = 60.0
    notify_max_attempts: int = 8  # sending passes for one SMS before it is given up as failed
    notify_retry_base_s: float = 30.0  # backoff after a retryable failure: 30 s, 60 s, 2 min ... 30 min
    notify_failover_after: int = 3  # failures in a row before a channel is skipped for a while
    notify_failover_cooldown_s: float = 300.0
    notify_send_workers: int = 4  # SMS sent at once: a storm is not sent one HTTP round trip at a time

    # acknowledgement links in the SMS texts
    public_url: str = "http://127.0.0.1:8080"  # how phones reach the web app: links are {public_url}/a/{tok}
    ack_link_secret: SecretStr = SecretStr("")  # empty: a random key kept in data_dir/ack-link.key
    ack_link_ttl_h: float = 72.0

    # protocol
    max_records_per_message: int = 500

    @field_validator("web_trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        proxy_networks(value)  # a bad entry stops the service at start, with the entry named
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'chainwatch.sqlite'}"

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def influx_host(self) -> str:
        return urlsplit(self.influx_url).hostname or "127.0.0.1"

    @property
    def influx_port(self) -> int:
        return urlsplit(self.influx_url).port or 8086

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(value: str) -> tuple[Network, ...]:
    """``web_trusted_proxies`` as networks; a ValueError names the entry that is not an address."""
    nets = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return tuple(nets)


def get_settings() -> Settings:
    return Settings()
