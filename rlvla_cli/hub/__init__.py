"""`rlvla download-assets`: the catalogue of known repositories and downloads through huggingface_hub."""

from rlvla_cli.hub.catalogue import CATALOGUE, CatalogueEntry, catalogue_entries, resolve_entry
from rlvla_cli.hub.config_writer import write_config_keys
from rlvla_cli.hub.download import (
    DownloadResult,
    config_values,
    configure_endpoint,
    download_entry,
    download_with_requirements,
    verify_download,
)

__all__ = [
    "CATALOGUE",
    "CatalogueEntry",
    "DownloadResult",
    "catalogue_entries",
    "config_values",
    "configure_endpoint",
    "download_entry",
    "download_with_requirements",
    "resolve_entry",
    "verify_download",
    "write_config_keys",
]
