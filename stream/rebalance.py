"""What a partition owner does when the consumer group takes partitions away.

Both the stream worker and its label joiner own partitions (claimed in Redis,
with unflushed state in memory). On a *revoke* (a clean rebalance) each
revoked partition's state is flushed with its offset before it goes; on a
*loss* (the session expired: another member may own it already) the state is
dropped unwritten, since a write would be fenced anyway and the new owner
resumes from the offset stored in Redis.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, TopicPartition

__all__ = ["PartitionOwner"]


class PartitionOwner:
    """Rebalance callbacks over ``parts`` (partition → state) and ``_flush_partition``."""

    parts: dict[int, Any]

    def _flush_partition(self, p: int, final: bool = False) -> Any:
        raise NotImplementedError

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.partition in self.parts:
                self._flush_partition(tp.partition, final=True)
                self.parts.pop(tp.partition, None)
        consumer.unassign()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.parts.pop(tp.partition, None)
        consumer.unassign()
