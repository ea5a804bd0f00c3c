"""Entry point of the Dataflow Flex Template: ``haulage run``, submitted, not awaited.

The template launcher runs this file (``FLEX_TEMPLATE_PYTHON_PY_FILE`` in
deploy/Dockerfile) with the template parameters as ``--name=value`` plus the
Dataflow options it adds itself (project, region, staging, the SDK container
image…). It translates the parameters back to ``haulage run`` options
(:mod:`haulage.deploy.template_options`), validates them with the same code,
builds the same job graph (:func:`haulage.pipeline.jobs.run.build_pipeline`)
and submits it.

It must exit once the job is submitted: Google's Flex Template docs say not
to call ``wait_until_finish``, or the launch never completes. That is the one
difference from ``haulage run``, which waits for a batch run and prints its
summary; here the summary is the job's counters in the Dataflow console.

Only absolute imports: the launcher runs this as a script.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional, Sequence

_LOG = logging.getLogger("haulage")


class LaunchError(ValueError):
    """Parameters the template cannot run with; the message says what to fix."""


def launch(argv: Sequence[str]) -> Any:
    """Build and submit the job; return Beam's PipelineResult (not awaited)."""
    from haulage.pipeline.sources.files import expand_inputs
    from haulage.pipeline.options import OptionsError, options_from_namespace
    from haulage.pipeline.jobs.run import build_pipeline, configure_logging

    from haulage.deploy.template_options import NOT_TEMPLATE_PARAMETERS, parameter_name, run_parser, to_cli_argv

    parser = run_parser()
    cli_argv, rejected = to_cli_argv(argv)
    if rejected:
        reasons = {parameter_name(f): why for f, why in NOT_TEMPLATE_PARAMETERS.items()}
        raise LaunchError("; ".join(f"parameter {name} is not supported by the template: {reasons[name]}" for name in rejected))
    namespace, beam_args = parser.parse_known_args(cli_argv)
    # On Dataflow a local path is a worker's scratch disk: require a real sink and remote input.
    if not namespace.bigquery_dataset and not namespace.output_dir:
        raise LaunchError("no sink: give bigquery_dataset (tables made by 'haulage setup') or output_dir (gs://…)")
    if namespace.output_dir and not namespace.output_dir.startswith("gs://"):
        raise LaunchError(f"output_dir {namespace.output_dir!r}: must be a gs:// folder on Dataflow")
    local_inputs = [p for p in namespace.inputs if not p.startswith("gs://")]
    if local_inputs:
        raise LaunchError(f"input {local_inputs[0]!r}: must be a gs:// glob on Dataflow")
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args.append("--runner=DataflowRunner")  # a Flex Template always runs on Dataflow
    try:
        opts = options_from_namespace(namespace, beam_args)
    except OptionsError as exc:
        raise LaunchError(str(exc)) from None
    if opts.local:
        raise LaunchError(f"--runner {opts.runner}: the template runs on Dataflow only")
    configure_logging(quiet=False)
    files = expand_inputs(opts.inputs) if opts.inputs else None
    if files is not None:
        _LOG.info("submitting a batch job over %d files (%s bytes)", len(files), f"{sum(f.size for f in files):,}")
    result = build_pipeline(opts, files).run()
    try:  # no job id when the launcher has Beam write the job to a template location
        job = f": {result.job_id()}"
    except Exception:
        job = ""
    _LOG.info("job submitted%s", job)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    from haulage.pipeline.sources.files import InputError

    try:
        launch(sys.argv[1:] if argv is None else argv)
    except (LaunchError, InputError) as exc:
        print(f"haulage template: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
