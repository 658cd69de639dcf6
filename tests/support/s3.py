"""The tests' S3: moto in server mode on 127.0.0.1 (tests/support/s3server.py), started once
per test session and stopped after, with helpers to fill buckets and read what was sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import pytest

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3server.py")
#: the credentials every test client uses unless it asks for the read-only ones
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def s3_unavailable() -> str:
    """Empty if the tests' S3 can run here, else why not."""
    for module in ("moto", "s3fs", "boto3", "werkzeug"):
        try:
            __import__(module)
        except ImportError:
            return "%s is not installed (pip install -e '.[test]' installs it)" % module
    return ""


class S3Server:
    """One moto server process and the environment that points clients at it."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="unionfs-s3-")
        port_file = os.path.join(self._dir, "port")
        self._log = open(os.path.join(self._dir, "log"), "w")
        self._process = subprocess.Popen([sys.executable, SERVER, port_file], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if self._process.poll() is not None or time.monotonic() > deadline:
                message = "moto server did not start: %s" % self.server_log()
                self.stop()
                raise RuntimeError(message)
            time.sleep(0.05)
        with open(port_file) as handle:
            self.port = int(handle.read())
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.environ = dict(CREDENTIALS, AWS_ENDPOINT_URL=self.endpoint)

    def server_log(self) -> str:
        with open(os.path.join(self._dir, "log")) as handle:
            return handle.read()[-2000:]

    def stop(self) -> None:
        """End the server and remove its directory (its port file and log: nothing is left)."""
        self._process.terminate()
        self._process.wait(10)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- control --------------------------------------------------------------------------

    def _control(self, action: str, query: str = "", body: Any = None) -> Any:
        url = "%s/_unionfs/%s%s" % (self.endpoint, action, "?" + query if query else "")
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST")) as response:
            return json.load(response)

    def reset(self) -> None:
        """Forget the recorded requests and any pending injected faults."""
        self._control("reset")

    def log(self) -> List[Dict[str, Any]]:
        """Every request the server answered since the last reset, in order."""
        return self._control("log")

    def kinds(self) -> Dict[str, int]:
        """The recorded requests counted by kind (LIST, GET, HEAD, PUT, ...)."""
        counts: Dict[str, int] = {}
        for record in self.log():
            counts[record["kind"]] = counts.get(record["kind"], 0) + 1
        return counts

    def fault(self, count: int, status: int = 503, code: str = "SlowDown") -> None:
        """Answer the next ``count`` requests with this error instead of moto's answer."""
        self._control("fault", "count=%d&status=%d&code=%s" % (count, status, code))

    # -- buckets --------------------------------------------------------------------------

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = "b-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, objects: Mapping[str, bytes], threads: int = 16) -> None:
        client = self.client()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))

    def fill(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """Put many objects at once, straight into the server's store (not recorded)."""
        self._control("fill", body={"bucket": bucket, "objects": {k: v.decode("latin-1") for k, v in objects.items()}})

    def state(self, bucket: str, prefix: str = "") -> List[Tuple[str, str, int]]:
        """(key, ETag, size) of every object of ``bucket`` under ``prefix``: what
        "byte-identical" compares."""
        client = self.client()
        result: List[Tuple[str, str, int]] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            result.extend((item["Key"], item["ETag"], item["Size"]) for item in page.get("Contents", []))
        return sorted(result)


@pytest.fixture(scope="session")
def s3_server() -> Iterable[S3Server]:
    """The tests' S3 endpoint; skips (fails with UNIONFS_REQUIRE_S3=1, as in CI) without moto."""
    reason = s3_unavailable()
    if reason:
        if os.environ.get("UNIONFS_REQUIRE_S3") == "1":
            pytest.fail("S3 tests required (UNIONFS_REQUIRE_S3=1) but unavailable: " + reason)
        pytest.skip("S3 tests unavailable: " + reason)
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The tests' S3 with the standard AWS environment pointing at it, and a clean request log."""
    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3_server.reset()
    return s3_server


def environ_for(server: S3Server, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A child process's environment that reaches ``server`` the standard way."""
    env = dict(os.environ)
    env.update(server.environ)
    env.update(extra or {})
    return env
