"""The search: strategies, trial store, objectives, pruning, executors, runner and report."""

from audio_nas.search.config import PrunerConfig, SearchConfig
from audio_nas.search.runner import SearchResult, SearchRunner, run_search
from audio_nas.search.store import TrialStore
from audio_nas.search.strategies import STRATEGIES

__all__ = [
    "SearchConfig",
    "PrunerConfig",
    "SearchRunner",
    "SearchResult",
    "run_search",
    "TrialStore",
    "STRATEGIES",
]
