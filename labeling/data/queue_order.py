"""The order in which the labeling queue hands out clips: a project's ``settings["queue_order"]``.

:func:`queue_order` reads the setting and returns a :class:`QueueOrder`: its name, what people call
it, and the sort keys :mod:`labeling.annotate.queue` orders open clips by. :data:`QUEUE_ORDERS` holds every
order; this is the one place that maps the setting to an ordering, so a new strategy is a new entry
here (with the index in ``db/models.py`` that serves its keys in that order, so the queue's scan still
stops at the first eligible clip instead of sorting every open one).

- ``unlabelled_first`` (the default, also for projects that never chose): clips without a final label
  before clips with one (an imported label, a reviewer's, a rule's); within each group, fewest
  annotations first, then the highest priority, then the oldest.
- ``priority``: fewest annotations first, then the highest priority, then the oldest, whatever the
  final labels.
- ``random``: fewest annotations first, then a fixed shuffle: the order of the clips' content hashes
  (SHA-256 of the audio), which is random with respect to names, speakers and import batches, the same
  for every annotator and every request, and needs no upkeep. Priorities are not used.
- an active-learning strategy (one per :data:`analysis.active.STRATEGIES` entry that needs a model:
  uncertainty by margin, entropy or least confidence, committee disagreement by vote entropy or mean
  KL divergence, uncertainty + diversity): ordered as ``unlabelled_first``, but the priorities are
  written by the queue-scoring job (:mod:`labeling.model.queue_scores`) from the model's predictions,
  with ``settings["queue_random_share"]`` of the queue given to a random sample of the clips. Until a
  run exists the job writes a random order. Nothing is computed while a clip is handed out. These
  orders sort ``clip_queue`` (:class:`db.models.ClipQueue`), a narrow copy of the clips' queue keys
  kept by database triggers, where the job writes its priorities: rewriting nearly every clip's
  priority there is a narrow row and two small indexes per clip, not the wide clip row and its nine.

Adaptive overlap (``settings["adaptive_overlap"]``, :func:`overlap_settings`): with ``min_k``, ``max_k``
and a ``target`` final-label accuracy, the same job sets each open clip's ``annotations_needed`` from
:func:`analysis.overlap.overlap_decisions`, so clips get between ``min_k`` and ``max_k`` annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from analysis.active import STRATEGIES, Strategy
from db.models import Clip, ClipQueue


@dataclass(frozen=True)
class QueueOrder:
    """One way of ordering the queue."""

    name: str  # the value of ``settings["queue_order"]``
    title: str  # what the pages call it ("Order: unlabelled first")
    description: str  # one sentence for the settings form
    #: ORDER BY over open clips, ending in a unique column.
    keys: tuple[ColumnElement[Any] | InstrumentedAttribute[Any], ...]
    #: The :data:`analysis.active.STRATEGIES` name whose scores the queue-scoring job writes as the
    #: clips' priorities; None for orders that need no scoring.
    strategy: str | None = None

    @property
    def sorts_clip_queue(self) -> bool:
        """Whether :attr:`keys` are columns of ``clip_queue`` (the scored orders) rather than ``clips``."""
        return self.strategy is not None


_UNLABELLED_FIRST = (Clip.resolved, Clip.annotation_count, Clip.priority.desc(), Clip.id)
#: The same order over ``clip_queue``, whose priorities are the scoring job's.
_SCORED_KEYS = (ClipQueue.resolved, ClipQueue.annotation_count, ClipQueue.priority.desc(), ClipQueue.clip_id)
_SCORED = "Clips without a final label first; among them fewest annotations, then"


DEFAULT_QUEUE_ORDER = "unlabelled_first"
QUEUE_ORDERS: dict[str, QueueOrder] = {
    order.name: order
    for order in (
        QueueOrder(
            "unlabelled_first",
            "unlabelled first",
            "Clips without a final label come first; then fewest annotations, highest priority, oldest.",
            _UNLABELLED_FIRST,
        ),
        QueueOrder(
            "priority",
            "priority",
            "Fewest annotations first, then highest priority, then oldest, whether or not a clip "
            "already has a final label.",
            (Clip.annotation_count, Clip.priority.desc(), Clip.id),
        ),
        QueueOrder(
            "random",
            "random",
            "Fewest annotations first, then a fixed shuffle that is the same for everyone and every "
            "reload; priorities are not used.",
            (Clip.annotation_count, Clip.sha256, Clip.id),
        ),
        *(
            QueueOrder(name, STRATEGIES[name].title, f"{_SCORED} {why}", _SCORED_KEYS, name)
            for name, why in (
                ("margin", "the model's two likeliest classes closest to a tie."),
                ("entropy", "the model's class probabilities spread most evenly (highest entropy)."),
                ("least_confidence", "the model's likeliest class least probable."),
                (
                    "vote_entropy",
                    "most disagreement among copies of the model fitted on cross-validation folds.",
                ),
                (
                    "mean_kl",
                    "copies of the model fitted on cross-validation folds furthest from their consensus.",
                ),
                (
                    "margin_diversity",
                    "the most uncertain (margin), picked far apart in feature space so a batch covers "
                    "different kinds of clip.",
                ),
            )
        ),
    )
}
#: Orders whose priorities come from the queue-scoring job.
SCORED_ORDERS = tuple(name for name, order in QUEUE_ORDERS.items() if order.strategy)
DEFAULT_RANDOM_SHARE = 0.1
DEFAULT_RESCORE_EVERY = 50


def queue_order(settings: Mapping[str, Any] | None) -> QueueOrder:
    """The queue order of a project with these settings: the default when none was chosen.

    A value this version does not know (written by a newer one) falls back to the default as well;
    :func:`check_queue_order` keeps such values from being saved.
    """
    name = (settings or {}).get("queue_order")
    default = QUEUE_ORDERS[DEFAULT_QUEUE_ORDER]
    return QUEUE_ORDERS.get(name, default) if isinstance(name, str) else default


def check_queue_order(value: Any) -> str:
    """``value`` if it names a queue order; ValueError saying which do otherwise."""
    if not isinstance(value, str) or value not in QUEUE_ORDERS:
        raise ValueError(f"queue_order must be one of {', '.join(QUEUE_ORDERS)}, not {value!r}")
    return value


def check_random_share(value: Any) -> float:
    """``value`` as a share between 0 and 1; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"queue_random_share must be a number between 0 and 1, not {value!r}")
    return float(value)


def random_share(settings: Mapping[str, Any] | None) -> float:
    """Share of a scored queue given to a random sample of the clips (``settings["queue_random_share"]``)."""
    try:
        return check_random_share((settings or {}).get("queue_random_share", DEFAULT_RANDOM_SHARE))
    except ValueError:
        return DEFAULT_RANDOM_SHARE


def check_rescore_every(value: Any) -> int:
    """``value`` as a whole number of labels from 1 to 100,000; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"queue_rescore_every must be a whole number of labels, not {value!r}")
    if not 1 <= int(value) <= 100_000:
        raise ValueError("queue_rescore_every must be between 1 and 100,000 labels")
    return int(value)


def rescore_every(settings: Mapping[str, Any] | None) -> int:
    """New labels after which the queue-scoring job scores the clips again (``queue_rescore_every``)."""
    try:
        return check_rescore_every((settings or {}).get("queue_rescore_every", DEFAULT_RESCORE_EVERY))
    except ValueError:
        return DEFAULT_RESCORE_EVERY


def queue_strategy(settings: Mapping[str, Any] | None) -> Strategy | None:
    """The active-learning strategy of a project's queue with its random share; None when the order
    needs no scoring."""
    order = queue_order(settings)
    if order.strategy is None:
        return None
    return STRATEGIES[order.strategy].with_random_share(random_share(settings))


def queue_caption(settings: Mapping[str, Any] | None) -> str:
    """What the Label page says serves the clips: the order, and for a strategy its random share."""
    strategy = queue_strategy(settings)
    return queue_order(settings).title if strategy is None else strategy.title


@dataclass(frozen=True)
class OverlapSettings:
    """Adaptive overlap: every clip gets at least ``min_k`` and at most ``max_k`` annotations, and more
    than ``min_k`` only while its majority label is less likely than ``target``."""

    min_k: int = 1
    max_k: int = 3
    target: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"min_k": self.min_k, "max_k": self.max_k, "target": self.target}


def check_overlap(value: Any) -> dict[str, Any]:
    """``value`` (``{}`` for off, or ``min_k``, ``max_k``, ``target``) checked; ValueError otherwise."""
    if not isinstance(value, Mapping):
        raise ValueError("adaptive_overlap is a mapping of min_k, max_k and target (empty: off)")
    if not value:
        return {}
    unknown = set(value) - {"min_k", "max_k", "target"}
    if unknown:
        raise ValueError(f"adaptive_overlap knows min_k, max_k and target, not {', '.join(sorted(unknown))}")
    merged = {**OverlapSettings().to_dict(), **value}
    for k in ("min_k", "max_k"):
        v = merged[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or not 1 <= int(v) <= 50:
            raise ValueError(f"adaptive overlap {k} must be a whole number from 1 to 50, not {v!r}")
    if merged["min_k"] > merged["max_k"]:
        raise ValueError(
            f"adaptive overlap needs min_k <= max_k, got min_k={merged['min_k']}, max_k={merged['max_k']}"
        )
    t = merged["target"]
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0.5 <= float(t) < 1.0:
        raise ValueError(f"adaptive overlap target accuracy must be at least 0.5 and below 1, not {t!r}")
    return {"min_k": int(merged["min_k"]), "max_k": int(merged["max_k"]), "target": float(t)}


def overlap_settings(settings: Mapping[str, Any] | None) -> OverlapSettings | None:
    """A project's adaptive overlap, or None when it is off (the project's fixed k applies)."""
    try:
        checked = check_overlap((settings or {}).get("adaptive_overlap") or {})
    except ValueError:
        return None
    return OverlapSettings(**checked) if checked else None
