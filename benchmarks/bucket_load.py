#!/usr/bin/env python3
"""One big file loaded from an S3-compatible bucket, against the same file loaded from the watched folder.

The file is the load benchmark's (benchmarks/generate_transactions.py: retail lines with bad and duplicate rows). It
is uploaded in parts to moto's S3 server on 127.0.0.1 (its own process), then raw_uploads + transactions run for its
partition with ``ANALYTICS_UPLOADS_URL`` pointing at the bucket, in a freshly spawned process whose peak RSS is
reported; the same is done from the folder, into an emptied warehouse. Both must load the same rows.

Run (from the project root)::

    .venv/bin/python benchmarks/bucket_load.py --rows 5000000

Target (issue 13): a 5M-row object loads under 1 GiB of peak RSS (the object is streamed to a spool file in 1 MiB
chunks, so the bucket adds download time, not memory).
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the sibling load_benchmark.py, and the tests' S3 server
import load_benchmark  # noqa: E402 - a sibling script, not a package

from analytics_pipeline.warehouse import db  # noqa: E402

MiB = 1 << 20
RSS_TARGET_BYTES = 1 << 30
BUCKET = "bucket-load-benchmark"


def bucket_load(endpoint: str, name: str, digest: str) -> dict:
    """raw_uploads + transactions for the object's partition, with the bucket as the watched location."""
    warnings.simplefilter("ignore")  # Dagster's beta/supersession notices at import are not results
    import dagster as dg

    from analytics_pipeline.assets.transactions import transactions
    from analytics_pipeline.assets.uploads import raw_uploads
    from analytics_pipeline.definitions import defs
    from analytics_pipeline.ingestion import files
    from analytics_pipeline.resources import UploadFolders
    from analytics_pipeline.warehouse import server
    from analytics_pipeline_tests.s3_server import CREDENTIALS

    engine = db.engine_for(server.database_url())  # connect and apply the schema before the clock starts
    folders = UploadFolders(uploads_url=f"s3://{BUCKET}/incoming/", s3_endpoint_url=endpoint, **CREDENTIALS)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    key = files.partition_key(name, digest)
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        instance.add_dynamic_partitions("upload_files", [key])
        result = dg.materialize([raw_uploads, transactions], instance=instance, partition_key=key,
                                resources={**defs.resources, "folders": folders}, run_config=quiet)
        seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the project's run failed for {key}")
    with engine.connect() as conn:
        loaded = db.row_count(conn, "transactions")
    return {"seconds": seconds, "loaded": loaded, "peak_rss": load_benchmark.peak_rss_bytes()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def measure(rows: int) -> dict:
    from analytics_pipeline_tests.s3_server import client, s3_server

    generator = load_benchmark.load_generator()
    workdir = Path(tempfile.mkdtemp(prefix="bucket-load-"))
    workdir.chmod(0o755)
    try:
        path, summary = load_benchmark.generate(generator, workdir, "retail", rows, 0.001, 0.001)
        expected = rows - sum(summary.bad_rows.values()) - summary.duplicate_rows
        with load_benchmark.benchmark_server(workdir / "data") as target, s3_server() as endpoint:
            engine = db.engine_for(target.url)
            s3 = client(endpoint)
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(path), BUCKET, f"incoming/{path.name}")  # in parts, as a sync tool would
            from_bucket = load_benchmark.in_fresh_process(bucket_load, endpoint, path.name, sha256(path))
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA analytics CASCADE; DROP SCHEMA IF EXISTS analytics_loads CASCADE")
            engine.dispose()
            from_folder = load_benchmark.in_fresh_process(load_benchmark.project_load, str(path))
        for what, result in (("bucket", from_bucket), ("folder", from_folder)):
            load_benchmark.check_count(what, result["loaded"], expected)
        return {"rows": rows, "size_mib": path.stat().st_size / MiB, "bucket": from_bucket, "folder": from_folder}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args(argv)
    result = measure(args.rows)
    print("| rows | file | from | seconds | peak RSS |\n|---:|---:|---|---:|---:|")
    for what in ("bucket", "folder"):
        measured = result[what]
        print(f"| {result['rows']:,} | {result['size_mib']:,.0f} MiB | {what} | {measured['seconds']:.1f} | "
              f"{measured['peak_rss'] / MiB:,.0f} MiB |")
    met = result["bucket"]["peak_rss"] < RSS_TARGET_BYTES
    print(f"\npeak RSS under 1 GiB from the bucket: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
