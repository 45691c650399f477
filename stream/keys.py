"""The Redis key schema: every key driftline writes, in one place.

Every key starts with a configurable prefix (default ``dl``). Keys that must
change together share a hash tag (``{...}``) so the store also runs on Redis
Cluster: a partition's offset hash, its open-window index and its window
deltas live under ``{p:<topic>:<partition>}``; a model's baselines, closed
window results and history live under ``{m:<model>}``.

Names taken from events (features, categories) never appear in key names:
they are hash *fields*, percent-encoded by :func:`quote_name` so that no name
can contain the ``|`` separator. Model names are restricted by the event
contract to ``[A-Za-z0-9_.-]``, so they are safe inside keys.

Keys (``P`` the prefix, ``T`` the predictions topic, ``N`` a partition,
``M`` a model):

* ``P:{p:T:N}:off`` (hash): ``off`` next offset to consume, ``own`` owner
  token, ``gen`` claims so far, ``wm`` largest event time seen, ``act`` wall
  time of the last event, ``cu:<model>`` end of the newest closed window,
  ``dlq:<reason>`` dead letters by reason.
* ``P:{p:T:N}:open`` (sorted set): ``<model>|<start>`` of the windows holding
  deltas from this partition, score = window end.
* ``P:{p:T:N}:w:<model>:<start>`` (hash): this partition's additive sketch
  fields for one window, ``<feature>|<sketch>|<field>``.
* ``P:{m:M}:base`` (hash): ``current`` baseline version, ``v:<version>``
  registration time; ``P:{m:M}:base:<version>`` (hash): ``f:<feature>`` and
  ``p`` (prediction) reference sketches, ``@meta`` JSON.
* ``P:{m:M}:close:<start>`` (string): the close claim, then ``done``.
* ``P:{m:M}:res:<start>`` (string): the closed window's result (JSON).
* ``P:{m:M}:sk:<start>`` (hash): the closed window's merged sketches.
* ``P:{m:M}:windows`` (sorted set): starts of closed windows.
* ``P:{m:M}:hist:<feature>`` (hash): ``<metric>|<start>`` → value.
* ``P:{m:M}:mute`` (hash): ``<rule>|<feature>`` (``*`` for any) → mute expiry
  (epoch seconds).
* ``P:models`` (set): models with a baseline.

Labels (``L`` the labels topic; :mod:`stream.label_join`):

* ``P:{pr:M:S}:<bucket>`` (hash): prediction id → packed record (time,
  prediction, class probabilities) of model ``M`` for the join, ``S`` =
  CRC-32 of the id mod 16, ``bucket`` = prediction time // label horizon;
  expires 1.05 horizons after its last write.
* ``P:{p:L:N}:off`` and ``:open``: as for predictions, for label partitions.
* ``P:{p:L:N}:w:<model>:<start>`` (hash): this label partition's additive
  quality state for the window of the labelled predictions.
* ``P:{p:L:N}:seen:<model>:<bucket>`` (hash): ids already labelled (a
  duplicate never counts twice).
* ``P:{m:M}:quality:<start>`` (string): the window's quality (JSON), updated as
  labels arrive.
* ``P:{m:M}:qstate`` (hash): quality rule → ``{"firing", "start"}`` (JSON), the
  quality alerts' lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["SEP", "Keys", "quote_name", "unquote_name"]

SEP = "|"


def quote_name(name: str) -> str:
    """Percent-encode a name from an event so it cannot contain ``|`` or ``:``.

    Example:
        >>> quote_name("a|b c")
        'a%7Cb%20c'
        >>> unquote_name(quote_name("a|b c"))
        'a|b c'
    """
    return quote(name, safe="")


def unquote_name(text: str) -> str:
    """Inverse of :func:`quote_name`."""
    return unquote(text)


@dataclass(frozen=True)
class Keys:
    """Builds every key under one prefix.

    Example:
        >>> k = Keys("dl")
        >>> k.offsets("driftline.predictions", 3)
        'dl:{p:driftline.predictions:3}:off'
        >>> k.window_delta("driftline.predictions", 3, "churn", 1200)
        'dl:{p:driftline.predictions:3}:w:churn:1200'
    """

    prefix: str = "dl"

    def _p(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{{p:{topic}:{partition}}}"

    def _m(self, model: str) -> str:
        return f"{self.prefix}:{{m:{model}}}"

    def offsets(self, topic: str, partition: int) -> str:
        return f"{self._p(topic, partition)}:off"

    def open_windows(self, topic: str, partition: int) -> str:
        return f"{self._p(topic, partition)}:open"

    def window_delta(self, topic: str, partition: int, model: str, start: int) -> str:
        return f"{self._p(topic, partition)}:w:{model}:{start}"

    def predictions(self, model: str, shard: int, bucket: int) -> str:
        return f"{self.prefix}:{{pr:{model}:{shard}}}:{bucket}"

    def labelled(self, topic: str, partition: int, model: str, bucket: int) -> str:
        return f"{self._p(topic, partition)}:seen:{model}:{bucket}"

    def quality(self, model: str, start: int) -> str:
        return f"{self._m(model)}:quality:{start}"

    def quality_state(self, model: str) -> str:
        return f"{self._m(model)}:qstate"

    def baseline_index(self, model: str) -> str:
        return f"{self._m(model)}:base"

    def baseline(self, model: str, version: str) -> str:
        return f"{self._m(model)}:base:{version}"

    def close_claim(self, model: str, start: int) -> str:
        return f"{self._m(model)}:close:{start}"

    def result(self, model: str, start: int) -> str:
        return f"{self._m(model)}:res:{start}"

    def window_sketches(self, model: str, start: int) -> str:
        return f"{self._m(model)}:sk:{start}"

    def closed_windows(self, model: str) -> str:
        return f"{self._m(model)}:windows"

    def history(self, model: str, feature: str) -> str:
        return f"{self._m(model)}:hist:{quote_name(feature)}"

    def mutes(self, model: str) -> str:
        return f"{self._m(model)}:mute"

    def models(self) -> str:
        return f"{self.prefix}:models"
