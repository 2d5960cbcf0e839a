"""A real S3-compatible server on 127.0.0.1 for the bucket tests: moto's standalone server, in its own process.

The project's boto3 client talks HTTP to it as it would to MinIO or AWS (signing, pagination, ETags, multipart
uploads, conditional reads), so nothing in the client is mocked.
"""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import requests

from analytics_pipeline_tests.stack import free_port, wait_for

CREDENTIALS = {"s3_region": "us-east-1", "s3_access_key_id": "test-key", "s3_secret_access_key": "test-secret"}


def _responds(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


@contextmanager
def s3_server() -> Iterator[str]:
    """Start the server on a free port; yields its endpoint URL; stops it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _responds(url), 60, "the S3 server", interval=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def client(endpoint: str):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=CREDENTIALS["s3_region"],
        aws_access_key_id=CREDENTIALS["s3_access_key_id"], aws_secret_access_key=CREDENTIALS["s3_secret_access_key"],
    )
