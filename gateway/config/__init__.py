"""Configuration: one TOML file mapped onto frozen dataclasses, with every default written here.

The settings themselves live in :mod:`gateway.config.settings`; reading and checking a file in
:mod:`gateway.config.loading`. Import the public names from here (``from gateway.config import Settings``).
"""

from gateway.config.loading import ConfigError, check_settings, load_settings, settings_from_dict
from gateway.config.retention import RetentionSettings
from gateway.config.settings import (
    AuthSettings,
    CabinetSettings,
    CalendarSettings,
    ConnectorKind,
    DeliveryMode,
    DeliverySettings,
    LimitSettings,
    ListenSettings,
    MessageLogSettings,
    MonitorSettings,
    ProviderSignature,
    QuotaSettings,
    RedisSettings,
    SenderAuth,
    SenderSettings,
    ServiceSettings,
    Settings,
    ShepSettings,
    SignerSettings,
    TrustSettings,
    UploadSettings,
    WsSecuritySettings,
)

__all__ = [
    "AuthSettings",
    "CabinetSettings",
    "CalendarSettings",
    "ConfigError",
    "ConnectorKind",
    "DeliveryMode",
    "DeliverySettings",
    "LimitSettings",
    "ListenSettings",
    "MessageLogSettings",
    "MonitorSettings",
    "ProviderSignature",
    "QuotaSettings",
    "RedisSettings",
    "RetentionSettings",
    "SenderAuth",
    "SenderSettings",
    "ServiceSettings",
    "Settings",
    "ShepSettings",
    "SignerSettings",
    "TrustSettings",
    "UploadSettings",
    "WsSecuritySettings",
    "check_settings",
    "load_settings",
    "settings_from_dict",
]
