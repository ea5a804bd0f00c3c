"""haulage.pipeline.sources — Beam sources: files and archives, Pub/Sub.

``files`` reads local or gs:// files into chunks of lines, ``pubsub`` and
``pubsub_windows`` read Pub/Sub messages (lines or Cloud Storage
notifications, allow-listed by ``notifications``), ``batching`` bounds chunks by
lines and bytes, ``identity`` names each source so its rows have stable ids.
"""

__all__: list[str] = []
