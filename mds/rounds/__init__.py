"""Labelling rounds end to end, each step recorded and resumable (``mds round start|finish|status|ls``)."""

from mds.rounds.api import finish_round, list_rounds, round_status, start_round
from mds.rounds.config import RoundConfig

__all__ = ["RoundConfig", "finish_round", "list_rounds", "round_status", "start_round"]
