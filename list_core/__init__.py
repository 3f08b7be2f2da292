"""LiST (Lite Prompted Self-Training, arXiv 2110.06274) as a plain Python library."""

from .adapter import AdaptedLinear, Adapter, fold_adapters
from .backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from .baselines import METHODS, run_method
from .config import AdapterConfig, TrainConfig, preset
from .data import DataError
from .events import Cancelled, Event
from .model import ListModel
from .prompts import Prompt, PromptError
from .self_training import RunResult, TaskData, run_list

__all__ = [
    "DEFAULT_BACKBONE",
    "METHODS",
    "AdaptedLinear",
    "Adapter",
    "AdapterConfig",
    "Backbone",
    "Cancelled",
    "DataError",
    "Event",
    "ListModel",
    "Prompt",
    "PromptError",
    "RunResult",
    "TaskData",
    "TrainConfig",
    "fold_adapters",
    "load_backbone",
    "preset",
    "run_list",
    "run_method",
]
