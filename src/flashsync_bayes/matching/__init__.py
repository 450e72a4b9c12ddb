"""Event-to-flash matching between cameras: coarse offsets, drifts and flash ids with no manual input.

Modules, lowest first: :mod:`.edges` (leading edges and their own-clock times), :mod:`.pairwise`
(one camera pair's clock relation from event times alone), :mod:`.mappings` (per-camera mappings
to the reference clock), :mod:`.graph` (pairwise relations chained along a spanning tree),
:mod:`.flashes` (clustering into flashes, joint refit, catalogue), :mod:`.rows` (total-rows
guessing) and the front door :mod:`.match` (:func:`match_events`).
"""

from flashsync_bayes.matching.edges import LeadingEdges
from flashsync_bayes.matching.mappings import Mappings
from flashsync_bayes.matching.match import DEFAULT_TOLERANCE_MS, MAX_PAIRS, match_events
from flashsync_bayes.matching.pairwise import MatchSettings, PairMatch, match_pair

__all__ = [
    "DEFAULT_TOLERANCE_MS",
    "MAX_PAIRS",
    "LeadingEdges",
    "Mappings",
    "MatchSettings",
    "PairMatch",
    "match_events",
    "match_pair",
]
