"""haulage.pipeline.sources — Beam sources: files and archives, Pub/Sub.

``files`` reads local or gs:// files into chunks of lines. Pub/Sub has two
sources: ``pubsub`` (Beam's ReadFromPubSub, the Dataflow graph) and
``pubsub_windows`` (haulage's local windowed pull); both decode messages (lines
or Cloud Storage notifications, allow-listed by ``notifications``) with
``messages``. ``batching`` bounds chunks by lines and bytes, ``identity`` names
each source so its rows have stable ids.
"""

__all__: list[str] = []
