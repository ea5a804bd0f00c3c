"""haulage.pipeline.runners — how a graph runs on this machine.

``direct_streaming`` runs the Dataflow streaming graph on Beam's direct runner;
``local_workers`` deals batch input files to worker processes.
"""

__all__ = ["LOCAL_RUNNER_MODULES"]

LOCAL_RUNNER_MODULES = (
    "apache_beam.portability.api",  # the generated protos, beam_provision_api_pb2 among them
    "apache_beam.runners.portability.fn_api_runner.fn_runner",
    "apache_beam.runners.portability.portable_runner",
)
"""Beam's modules that the local runner (``graph.local_runner``) needs, named here so that the
command line can import them with the job, before any worker is forked, without importing Beam
itself to find their names."""
