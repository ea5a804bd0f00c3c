"""haulage.pipeline.runners — how a graph runs on this machine.

``direct_streaming`` runs the Dataflow streaming graph on Beam's direct runner;
``local_workers`` deals batch input files to worker processes.
"""

__all__: list[str] = []
