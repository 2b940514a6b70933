"""Configuration: the settings loader (the only reader of the environment) and the feed list."""

from config.settings import Settings, SettingsError, load_settings
from config.sources import FeedConfig, SiteConfig, Sources, SourcesError, load_sources

__all__ = [
    "FeedConfig",
    "Settings",
    "SettingsError",
    "SiteConfig",
    "Sources",
    "SourcesError",
    "load_settings",
    "load_sources",
]
