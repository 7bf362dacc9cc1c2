"""Configuration: one settings class, read from `OMS_*` environment variables."""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.delivery import DeliveryRules
from models.money import to_minor
from models.orders import DecimalString, LostParcelPolicy, OrderPolicy
from models.returns import ExchangeShipping, RefundDelivery, ReturnReason
from workers.queues import Domain


class Settings(BaseSettings):
    """Every setting the processes read; see the README's settings table."""

    # An empty variable counts as unset, as `${VAR:-}` in a compose file gives.
    model_config = SettingsConfigDict(
        env_prefix="OMS_",
        env_file=".env",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    database_url: str = Field(
        default="",
        description="PostgreSQL URL; empty starts the embedded server in the data dir",
    )
    temporal_address: str = Field(
        default="",
        description="Temporal frontend host:port; empty starts the embedded dev server",
    )
    temporal_namespace: str = "default"
    temporal_task_queue: str = Field(
        default="oms-orders",
        description="task queue of the order workflows (and the read-model writes)",
    )
    inventory_task_queue: str = "oms-inventory"
    payments_task_queue: str = "oms-payments"
    shipping_task_queue: str = "oms-shipping"
    returns_task_queue: str = "oms-returns"
    notifications_task_queue: str = Field(
        default="oms-notifications",
        description="customer messages; the workers on it also deliver webhooks",
    )
    worker_shutdown_seconds: float = Field(
        default=30,
        ge=0,
        description="on SIGTERM, how long activities in hand may run on before "
        "they are cancelled (and retried by another worker)",
    )
    worker_metrics_address: str = Field(
        default="",
        description="host:port where the worker serves the Temporal SDK's "
        "Prometheus metrics (task latencies, failed activities, slots); empty: off",
    )

    orders_gauge_seconds: float = Field(
        default=30,
        gt=0,
        description="how often the orders worker counts orders by status for "
        "its metrics",
    )
    api_metrics: bool = Field(
        default=True,
        description="serve /metrics on the API's port, without an API key",
    )
    otlp_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices(
            "OMS_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
        description="OTLP/HTTP collector traces are sent to, as "
        "http://collector:4318; empty: no tracing",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per log line"
    )

    # A Temporal cluster with TLS, or Temporal Cloud with mTLS or an API key.
    temporal_tls: bool = Field(
        default=False,
        description="connect with TLS (implied by a client certificate or an "
        "API key); without a CA file the system's roots are trusted",
    )
    temporal_tls_cert: Path | None = Field(
        default=None, description="client certificate (PEM) for mutual TLS"
    )
    temporal_tls_key: Path | None = Field(
        default=None, description="the client certificate's private key (PEM)"
    )
    temporal_tls_ca: Path | None = Field(
        default=None, description="CA certificate (PEM) that signed the server's"
    )
    temporal_tls_server_name: str = Field(
        default="", description="name to check the server's certificate against"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key"
    )
    data_dir: Path = Path("./.oms")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = Field(
        default=7233, description="port of the embedded Temporal dev server"
    )
    temporal_ui_port: int = 8233
    log_level: str = "INFO"
    public_url: str = Field(
        default="",
        description="where customers and providers reach the API; empty: "
        "http://OMS_API_HOST:OMS_API_PORT",
    )

    # Encryption of Temporal payloads (customer data in workflow histories).
    codec_keys: dict[str, SecretStr] = Field(
        default={},
        description='AES-256 keys by id, as JSON: {"id": "<urlsafe base64>"}; '
        "empty: payloads are not encrypted (oms dev makes a key of its own)",
    )
    codec_key_id: str = Field(default="", description="the key id new payloads use")
    codec_port: int = Field(default=8234, description="port of oms codec-server")
    codec_cors_origins: list[str] = Field(
        default=["http://localhost:8233", "http://127.0.0.1:8233"],
        description="Temporal UI origins allowed to call the codec server",
    )

    # Limits on every API key and request.
    rate_limit_per_second: float = Field(default=50, gt=0)
    rate_limit_burst: float = Field(default=100, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, gt=0)

    # Payments: the built-in sandbox unless a provider is configured.
    payment_gateway: str = "sandbox"
    webhook_secrets: dict[str, SecretStr] = Field(
        default={
            "sandbox": SecretStr("sandbox-webhook-secret"),
            "sandbox-express": SecretStr("sandbox-express-webhook-secret"),
        },
        description='HMAC secret per webhook provider, as JSON: {"provider": '
        '"secret"}; set your own in production',
    )
    webhook_tolerance_seconds: int = Field(default=300, gt=0)

    # Parcels: what happens to a lost one, and when a silent one is late.
    lost_parcel_policy: LostParcelPolicy = LostParcelPolicy.RESHIP
    late_shipment_seconds: float = Field(default=3 * 86_400, gt=0)

    # Returns, unless the channel says otherwise: the window after the last
    # delivery, reasons that staff review first, how long the goods may take
    # to come back, whether a full return refunds delivery, when an
    # exchange's replacement ships.
    return_window_seconds: float = Field(default=14 * 86_400, ge=0)
    return_review_reasons: list[ReturnReason] = []
    return_goods_seconds: float = Field(default=30 * 86_400, gt=0)
    refund_delivery: RefundDelivery = RefundDelivery.FULL_RETURN
    exchange_ships: ExchangeShipping = ExchangeShipping.ON_RECEIPT

    # Delivery prices: free standard delivery from this order value (in the
    # order's currency; empty: never free), days before a parcel leaves.
    delivery_free_over: DecimalString | None = Field(
        default="50.00", description="`never`: delivery is always charged"
    )
    delivery_handling_days: int = Field(default=1, ge=0, le=30)

    # Outbound webhooks: how long a subscriber may take to answer, the pause
    # after its first failure (doubling up to the longest), how many attempts
    # an event gets before it is given up (replayable), how often the outbox
    # is polled, and how long delivered events are kept.
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_retry_seconds: float = Field(default=5, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600, gt=0)
    webhook_max_attempts: int = Field(
        default=30,
        ge=1,
        description="attempts per event before it is marked failed (about a "
        "day of a subscriber failing, with the default back-off)",
    )
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_private_networks: bool = Field(
        default=False,
        description="let subscribers be on loopback, private or link-local "
        "addresses; off, a key cannot make the OMS call its own network",
    )
    outbox_retention_days: float = Field(
        default=30,
        gt=0,
        description="events older than this, with nothing left to deliver, "
        "are deleted from the outbox",
    )

    # Sandbox warehouse and carrier: how long until they confirm by themselves.
    sandbox_pick_seconds: float = Field(default=2.0, ge=0)
    sandbox_pack_seconds: float = Field(default=2.0, ge=0)
    sandbox_transit_seconds: float = Field(default=5.0, ge=0)

    def task_queue(self, domain: Domain) -> str:
        return {
            Domain.ORDERS: self.temporal_task_queue,
            Domain.INVENTORY: self.inventory_task_queue,
            Domain.PAYMENTS: self.payments_task_queue,
            Domain.SHIPPING: self.shipping_task_queue,
            Domain.RETURNS: self.returns_task_queue,
            Domain.NOTIFICATIONS: self.notifications_task_queue,
        }[domain]

    @field_validator("worker_metrics_address")
    @classmethod
    def _ip_and_port(cls, value: str) -> str:
        if not value:
            return value
        host, _, port = value.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            valid_port = 0 < int(port) < 65536
        except ValueError:
            valid_port = False
        if not valid_port:
            raise ValueError("must be an IP address and a port, as 0.0.0.0:9464")
        return value

    @field_validator("delivery_free_over", mode="before")
    @classmethod
    def _never_free(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("never", "none"):
            return None
        return value

    @property
    def codec_secrets(self) -> dict[str, str]:
        return {
            key_id: key.get_secret_value() for key_id, key in self.codec_keys.items()
        }

    @property
    def order_defaults(self) -> OrderPolicy:
        """What every order gets unless its channel says otherwise."""
        return OrderPolicy(
            lost_parcel=self.lost_parcel_policy,
            late_after_seconds=self.late_shipment_seconds,
            return_window_seconds=self.return_window_seconds,
            return_review_reasons=self.return_review_reasons,
            return_goods_seconds=self.return_goods_seconds,
            refund_delivery=self.refund_delivery,
            exchange_ships=self.exchange_ships,
        )

    def delivery_rules(self, currency: str) -> DeliveryRules:
        free_over = self.delivery_free_over
        return DeliveryRules(
            free_standard_over_minor=(
                None if free_over is None else to_minor(free_over, currency)
            ),
            handling_days=self.delivery_handling_days,
        )

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def embedded_temporal(self) -> bool:
        return not self.temporal_address


@lru_cache
def get_settings() -> Settings:
    return Settings()
