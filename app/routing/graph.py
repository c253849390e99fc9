"""Build the routable osmnx graph of one travel mode: filter, speeds, strongly connected core."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import osmnx as ox

from app.domain import TravelMode
from app.routing._osm import Extract, write_mode_xml
from app.routing.errors import RegionSourceError
from app.routing.settings import RoutingSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GraphReport:
    """What building a mode's graph kept and dropped."""

    ways: int
    nodes_before: int
    edges_before: int
    nodes: int
    edges: int

    @property
    def dropped_nodes(self) -> int:
        """Nodes outside the largest strongly connected component."""
        return self.nodes_before - self.nodes


def apply_speeds(
    graph: nx.MultiDiGraph, mode: TravelMode, settings: RoutingSettings
) -> nx.MultiDiGraph:
    """Add ``speed_kph`` and ``travel_time`` (s) to every edge of ``graph`` in place.

    Drive edges get osmnx's imputation (tagged ``maxspeed``, else the per-highway setting, else
    the mean of tagged edges of that type, else the fallback); bike and walk a constant speed.
    """
    if mode is TravelMode.DRIVE:
        ox.add_edge_speeds(
            graph,
            hwy_speeds=dict(settings.drive_speeds_kmh),
            fallback=settings.drive_fallback_kmh,
        )
    else:
        kmh = settings.bike_kmh if mode is TravelMode.BIKE else settings.walk_kmh
        nx.set_edge_attributes(graph, kmh, "speed_kph")
    ox.add_edge_travel_times(graph)
    return graph


def build_graph(
    extract: Extract, mode: TravelMode, settings: RoutingSettings
) -> tuple[nx.MultiDiGraph, nx.MultiDiGraph, GraphReport]:
    """Build the simplified graph of ``mode`` from an extract.

    The filtered ways go through a temporary OSM XML file into :func:`osmnx.graph_from_xml`
    (osmnx cannot read PBF). Walk is bidirectional; drive and bike respect one-way streets.

    Returns
    -------
    tuple
        The kept graph (largest strongly connected component unless disabled, with speeds),
        the full graph before that cut, and a report of the counts.
    """
    with tempfile.TemporaryDirectory(prefix="routing-") as tmp:
        xml = Path(tmp) / f"{mode.value}.osm"
        ways = write_mode_xml(extract, mode, xml)
        if ways == 0:
            msg = f"the OSM source has no {mode.value} ways"
            raise RegionSourceError(msg)
        full = ox.graph_from_xml(xml, bidirectional=mode is TravelMode.WALK, retain_all=True)
    kept = (
        ox.truncate.largest_component(full, strongly=True) if settings.largest_component else full
    )
    kept = apply_speeds(kept.copy(), mode, settings)
    report = GraphReport(
        ways=ways,
        nodes_before=len(full),
        edges_before=full.number_of_edges(),
        nodes=len(kept),
        edges=kept.number_of_edges(),
    )
    log.info(
        "built %s graph: %d ways, %d nodes, %d edges, %d nodes dropped",
        mode.value,
        ways,
        report.nodes,
        report.edges,
        report.dropped_nodes,
    )
    return kept, full, report


def graph_from_place(place: str, mode: TravelMode, settings: RoutingSettings) -> nx.MultiDiGraph:
    """Download the graph of ``mode`` through osmnx's Overpass client (needs network access).

    Parameters
    ----------
    place
        A place name osmnx can geocode, e.g. ``"Vaduz, Liechtenstein"``.
    """
    graph = ox.graph_from_place(place, network_type=mode.value, retain_all=True)
    if settings.largest_component:
        graph = ox.truncate.largest_component(graph, strongly=True)
    return apply_speeds(graph, mode, settings)
