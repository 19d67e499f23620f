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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from db.models import Clip


@dataclass(frozen=True)
class QueueOrder:
    """One way of ordering the queue."""

    name: str  # the value of ``settings["queue_order"]``
    title: str  # what the pages call it ("Order: unlabelled first")
    description: str  # one sentence for the settings form
    #: ORDER BY over open clips, ending in a unique column.
    keys: tuple[ColumnElement[Any] | InstrumentedAttribute[Any], ...]


DEFAULT_QUEUE_ORDER = "unlabelled_first"
QUEUE_ORDERS: dict[str, QueueOrder] = {
    order.name: order
    for order in (
        QueueOrder(
            "unlabelled_first",
            "unlabelled first",
            "Clips without a final label come first; then fewest annotations, highest priority, oldest.",
            (Clip.resolved, Clip.annotation_count, Clip.priority.desc(), Clip.id),
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
    )
}


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
