"""The sample district batch the API tests import (it lives in :mod:`bench._load_district`)."""

from __future__ import annotations

from bench._load_district import DISTRICT, district_batch

__all__ = ["DISTRICT", "district_batch"]
