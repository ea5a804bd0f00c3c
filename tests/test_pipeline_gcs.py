"""``haulage run --input 'gs://…/*.gz'`` through the Cloud Storage emulator.

Expected values come from the generator's oracle (benchmarks/corpus.py).
"""

from __future__ import annotations

import pytest

from support import emulators
from support import pipeline_check as pc

pytestmark = pytest.mark.emulator


def test_run_gcs_glob(gcs_emulator, google_credentials, tmp_path):
    items = pc.labelled(500, seed=51)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    sources = []

    def upload(name: str, data: bytes, part: list, **kw) -> None:
        bucket.blob(name).upload_from_string(data, content_type="application/gzip")
        sources.append(pc.Source(f"gs://{gcs_emulator.bucket}/{name}", part, **kw))

    upload("logs/downloads-0.log.gz", pc.gzipped(pc.lines_of(items[:200])), items[:200])
    upload("logs/downloads-1.log.gz", pc.gzipped(pc.lines_of(items[200:420])), items[200:420])
    whole = pc.gzipped(pc.lines_of(items[420:]))
    upload("logs/downloads-2.log.gz", whole[: len(whole) * 2 // 3], items[420:], fault="truncated-gzip")
    upload("logs/empty.log.gz", b"", [], fault="empty-file", readable=0)
    # not matched by the glob: must not be read
    bucket.blob("logs/notes.txt").upload_from_string(pc.joined(pc.lines_of(items[:10])))
    bucket.blob("other/downloads-9.log.gz").upload_from_string(pc.gzipped(pc.lines_of(items[:10])))

    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env({**google_credentials, **gcs_emulator.env()}):
            result = pc.run_cli(["run", "--input", f"gs://{gcs_emulator.bucket}/logs/*.gz",
                                 "--output-dir", str(tmp_path / "out"), "--quiet"])
    finally:
        emulators.reset_beam_credentials_cache()
    assert result.code == 0, result.stderr

    out = pc.read_parquet_output(tmp_path / "out")
    acc = pc.check_output(out, sources)
    pc.check_summary(result.summary(), out, acc, files=4)
    assert acc.faults == 2
    assert 420 < acc.lines < 500  # the truncated file gave some of its lines
    assert sum(acc.expected_per_day.values()) == len(out.rows["file_downloads"]) + len(out.rows["simple_requests"])
    # rows of the good files are all there, by day
    assert {day for _, day in acc.expected_per_day} == {"2026-10-01", "2026-10-02"}


@pytest.mark.parametrize("runner", [[], ["--runner", "BundleBasedDirectRunner"]], ids=["fnapi", "direct"])
def test_backfill_from_gcs_to_parquet_on_gcs(gcs_emulator, google_credentials, runner):
    """A backfill as on Dataflow: gs:// globs in, Parquet on gs:// out (read back from the emulator's disk)."""
    import uuid

    items = pc.labelled(400, seed=53)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    run_id = uuid.uuid4().hex[:8]
    sources = []
    for i, part in enumerate((items[:150], items[150:])):
        name = f"archive-{run_id}/2026-10-0{i + 1}/00.log.gz"
        bucket.blob(name).upload_from_string(pc.gzipped(pc.lines_of(part)))
        sources.append(pc.Source(f"gs://{gcs_emulator.bucket}/{name}", part))
    output = f"gs://{gcs_emulator.bucket}/backfill-{run_id}"

    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env({**google_credentials, **gcs_emulator.env()}):
            result = pc.run_cli(["run", *runner, "--input", f"gs://{gcs_emulator.bucket}/archive-{run_id}/*/*.gz",
                                 "--output-dir", output, "--quiet"])
    finally:
        emulators.reset_beam_credentials_cache()
    assert result.code == 0, result.stdout + result.stderr
    out = pc.read_parquet_output(gcs_emulator.object_path(f"backfill-{run_id}"))
    acc = pc.check_output(out, sources)
    pc.check_summary(result.summary(), out, acc, files=2)
    assert acc.lines == 400
