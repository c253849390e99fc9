"""Small, realistic import batches for the API tests (Vaduz, Liechtenstein)."""

from __future__ import annotations

import copy
from typing import Any

_BATCH: dict[str, Any] = {
    "districts": [
        {"external_id": "vaduz", "name": "Vaduz"},
        {"external_id": "schaan", "name": "Schaan"},
    ],
    "teams": [{"external_id": "vaduz-north", "name": "Vaduz Nord", "district": "vaduz"}],
    "staff": [
        {
            "external_id": "S-1",
            "name": "Anna Beck",
            "district": "vaduz",
            "team": "vaduz-north",
            "competences": ["level3", "insulin"],
            "travel_mode": "drive",
            "start": {"lat": 47.1410, "lon": 9.5209},
        },
        {
            "external_id": "S-2",
            "name": "Jonas Marxer",
            "district": "vaduz",
            "competences": ["level5", "wound_care", "insulin"],
            "travel_mode": "bike",
            "start": {"lat": 47.1380, "lon": 9.5230},
            "end": {"lat": 47.1400, "lon": 9.5200},
        },
        {
            "external_id": "S-3",
            "name": "Lea Frick",
            "district": "schaan",
            "competences": ["level2", "adl"],
            "travel_mode": "walk",
            "start": {"lat": 47.1650, "lon": 9.5090},
        },
    ],
    "clients": [
        {
            "external_id": "C-1",
            "district": "vaduz",
            "street": "Aeulestrasse",
            "housenumber": "5",
            "postcode": "9490",
            "city": "Vaduz",
            "coordinates": {"lat": 47.1398, "lon": 9.5215},
            "preferred_carers": ["S-1"],
            "notes": "key under the mat",
        },
        {
            "external_id": "C-2",
            "district": "vaduz",
            "street": "Herrengasse",
            "housenumber": "12",
            "city": "Vaduz",
            "allowed_team": "vaduz-north",
        },
        {
            "external_id": "C-3",
            "district": "schaan",
            "street": "Landstrasse",
            "housenumber": "40",
            "postcode": "9494",
            "city": "Schaan",
            "coordinates": {"lat": 47.1660, "lon": 9.5100},
        },
    ],
    "templates": [
        {
            "external_id": "T-1",
            "client": "C-1",
            "weekdays": [1, 3, 5],
            "windows": [{"start": "07:30", "end": "08:30"}],
            "duration_minutes": 15,
            "competences": ["insulin"],
            "valid_from": "2025-03-01",
            "valid_to": "2025-03-31",
        }
    ],
    "visits": [
        {
            "external_id": "V-1",
            "client": "C-1",
            "date": "2025-03-03",
            "windows": [{"start": "07:30", "end": "08:30"}],
            "duration_minutes": 15,
            "competences": ["insulin"],
        },
        {
            "external_id": "V-2",
            "client": "C-1",
            "date": "2025-03-03",
            "windows": [{"start": "11:30", "end": "13:00"}],
            "duration_minutes": 15,
            "competences": ["insulin"],
            "depends_on": {"visit": "V-1", "min_gap_minutes": 240},
        },
        {
            "external_id": "V-3",
            "client": "C-2",
            "date": "2025-03-03",
            "windows": [{"start": "08:00", "end": "10:00"}, {"start": "14:00", "end": "16:00"}],
            "duration_minutes": 45,
            "competences": ["level3"],
            "carers_required": 2,
            "priority": "optional",
        },
        {
            "external_id": "V-4",
            "client": "C-3",
            "date": "2025-03-04",
            "windows": [{"start": "09:00", "end": "12:00"}],
            "duration_minutes": 30,
            "competences": ["adl"],
            "pinned_carer": "S-3",
        },
    ],
    "shifts": [
        {
            "external_id": "SH-1",
            "staff": "S-1",
            "date": "2025-03-03",
            "start": "07:00",
            "end": "15:00",
            "breaks": [{"windows": [{"start": "11:30", "end": "13:00"}], "duration_minutes": 30}],
        },
        {
            "external_id": "SH-2",
            "staff": "S-2",
            "date": "2025-03-03",
            "start": "07:00",
            "end": "12:00",
        },
        {
            "external_id": "SH-3",
            "staff": "S-3",
            "date": "2025-03-04",
            "start": "08:00",
            "end": "16:00",
        },
    ],
}


def sample_batch() -> dict[str, Any]:
    """A fresh deep copy of the sample batch (2 districts, 3 staff, 3 clients, 4 visits...)."""
    return copy.deepcopy(_BATCH)


def row_total(batch: dict[str, Any]) -> int:
    """How many rows the batch holds over all sections."""
    return sum(len(v) for v in batch.values())
