"""S3 prefixes as layers, against a real S3 endpoint on loopback (moto in server mode).

Every request the client sends is recorded by the server, so the request economy the design
promises is asserted as counts: a cold lookup costs one LIST per directory on its path, a warm
one nothing, a read ranged GETs and no HEAD. Bases are checked byte-identical (keys and ETags)
after every test that writes through an overlay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import unittest
from typing import Dict, List

import pytest

import unionfs  # noqa: F401
from fs import errors
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.test import FSTestCases

from unionfs import OverlayFS
from unionfs.errors import UnsupportedLayer
from unionfs.formats.fsspec_layer import FsspecFS, open_fsspec_url
from unionfs.testing import trees

from ..support.s3 import S3Server, environ_for, s3, s3_server, s3_unavailable  # noqa: F401  (fixtures)

BASE = {
    "base/etc/motd": b"hello from s3",
    "base/etc/hosts": b"127.0.0.1 localhost\n",
    "base/a/b/c/d.txt": b"deep",
    "base/a/b/c/e.txt": b"deep too",
    "base/a/x.txt": b"x",
    "base/big.bin": bytes(range(256)) * 4096 * 20,  # 20 MiB: bigger than a read block
    "base/empty/": b"",  # an empty directory, kept as a marker object
}


@pytest.fixture
def base(s3: S3Server):
    """A bucket with BASE in it; yields (bucket, url) and checks the bucket is unchanged after."""
    bucket = s3.new_bucket()
    s3.put(bucket, BASE)
    before = s3.state(bucket, "base/")
    s3.reset()
    yield bucket, "s3://%s/base" % bucket
    s3.reset()  # drop faults a test left pending
    assert s3.state(bucket, "base/") == before, "the S3 base was modified"


def writes(s3: S3Server) -> List[Dict[str, object]]:
    return [r for r in s3.log() if r["method"] not in ("GET", "HEAD")]


# -- the rules over S3 ------------------------------------------------------------------------


def test_s3_lower_by_url_reads_merges_and_copies_up(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    assert overlay.listdir("/") == ["a", "big.bin", "empty", "etc"]
    assert overlay.readbytes("etc/motd") == b"hello from s3"
    overlay.appendtext("etc/motd", "!")  # copy-up from S3, then the append
    assert overlay.readtext("etc/motd") == "hello from s3!"
    assert overlay.listdir("empty") == []
    assert not writes(s3)


def test_whiteout_over_s3_object_and_opaque_dir_over_s3_prefix(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.remove("etc/hosts")
    assert overlay.listdir("etc") == ["motd"]
    assert not overlay.exists("etc/hosts")
    overlay.removetree("a")
    overlay.makedir("a")  # over a whiteout: opaque, nothing of the S3 prefix shows through
    assert overlay.listdir("a") == []
    overlay.writetext("a/x.txt", "mine")
    assert overlay.listdir("a") == ["x.txt"] and overlay.readtext("a/x.txt") == "mine"
    assert not writes(s3)


def test_s3_lower_as_fs_object(base, s3):
    import s3fs

    bucket, _ = base
    client = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    overlay = OverlayFS([FsspecFS(client, bucket + "/base")], upper=MemoryFS())
    assert overlay.readbytes("a/b/c/d.txt") == b"deep"


def test_overlay_url_with_s3_layers(base, s3):
    from urllib.parse import quote

    import fs

    bucket, url = base
    with fs.open_fs("overlay://%s?upper=mem://" % quote(url, safe="")) as overlay:
        assert overlay.readtext("etc/motd") == "hello from s3"


# -- request economy --------------------------------------------------------------------------


def test_cold_lookup_costs_one_list_per_directory_on_the_path(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())  # opening lists the root
    s3.reset()
    assert overlay.getinfo("a/b/c/d.txt", ["details"]).size == 4  # depth 4
    log = s3.log()
    assert [r["kind"] for r in log] == ["LIST", "LIST", "LIST"], log
    assert [r["prefix"] for r in log] == ["base/a/", "base/a/b/", "base/a/b/c/"]


def test_warm_lookups_and_listings_cost_nothing(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.getinfo("a/b/c/d.txt")
    overlay.listdir("a/b/c")
    s3.reset()
    for _ in range(3):
        overlay.getinfo("a/b/c/d.txt", ["details"])
        overlay.exists("a/b/c/nope")
        assert overlay.listdir("a/b/c") == ["d.txt", "e.txt"]
    assert s3.log() == []


def test_listing_costs_one_list(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    s3.reset()
    assert [info.name for info in overlay.scandir("etc", namespaces=["details"])] == ["hosts", "motd"]
    assert s3.kinds() == {"LIST": 1}


def test_walk_costs_one_list_per_directory(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    s3.reset()
    directories = list(overlay.walk.dirs("/"))
    files = list(overlay.walk.files("/"))
    # the root was listed at open; every other directory once
    assert s3.kinds() == {"LIST": len(directories)}
    assert len(files) == 6


def test_read_is_ranged_gets_with_no_head(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.getinfo("big.bin")
    s3.reset()
    with overlay.openbin("big.bin") as handle:
        handle.seek(10 * 1024 * 1024)
        data = handle.read(100)
    assert data == (bytes(range(256)) * 4096 * 20)[10 * 1024 * 1024 : 10 * 1024 * 1024 + 100]
    log = s3.log()
    assert [r["kind"] for r in log] == ["GET"], log
    start, end = (int(n) for n in log[0]["range"].split("=")[1].split("-"))
    assert start == 10 * 1024 * 1024 and end - start < 9 * 1024 * 1024  # a block, not the object


def test_streaming_copy_up_reads_in_blocks(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.getinfo("big.bin")
    s3.reset()
    overlay.appendbytes("big.bin", b"!")
    gets = [r for r in s3.log() if r["kind"] == "GET"]
    assert len(gets) == 3 and all(r["range"] for r in gets)  # 20 MiB in 8 MiB blocks
    assert overlay.getsize("big.bin") == 20 * 1024 * 1024 + 1


# -- read-only credentials, bad input -----------------------------------------------------------


def test_base_opens_with_read_only_credentials(base, s3, monkeypatch):
    bucket, url = base
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "readonly")
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.writetext("etc/motd", "changed")
    overlay.remove("a/x.txt")
    overlay.removetree("a/b")
    assert overlay.readtext("etc/motd") == "changed"
    assert {r["key_id"] for r in s3.log()} == {"readonly"}
    assert not writes(s3)


def test_missing_bucket_is_a_clear_error(s3):
    with pytest.raises(UnsupportedLayer, match="s3://no-such-bucket-here/base"):
        OverlayFS(["s3://no-such-bucket-here/base"], upper=MemoryFS())


def test_empty_prefix_is_a_clear_error(base, s3):
    bucket, _ = base
    with pytest.raises(UnsupportedLayer, match="no such bucket or prefix"):
        OverlayFS(["s3://%s/nothing-here" % bucket], upper=MemoryFS())


def test_wrong_credentials_are_a_clear_error(base, s3, monkeypatch):
    bucket, url = base
    s3.fault(50, status=403, code="InvalidAccessKeyId")
    with pytest.raises(UnsupportedLayer, match=url):
        OverlayFS([url], upper=MemoryFS())


def test_endpoint_down_is_a_clear_error(monkeypatch):
    import socket

    reason = s3_unavailable()
    if reason:
        pytest.skip(reason)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % port)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(UnsupportedLayer, match="s3://some-bucket/base"):
        open_fsspec_url("s3://some-bucket/base")


def test_throttling_is_retried(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    s3.reset()
    s3.fault(2)  # two SlowDown answers, then moto again
    assert overlay.readbytes("etc/motd") == b"hello from s3"
    assert s3.kinds() == {"LIST": 3, "GET": 1}  # the LIST of etc/ answered on its third try


def test_failed_copy_up_leaves_nothing_visible(base, s3, monkeypatch):
    bucket, url = base
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # s3fs's own retries still run: quicker to exhaust
    upper = MemoryFS()
    overlay = OverlayFS([url], upper=upper)
    overlay.getinfo("big.bin")
    s3.fault(1000, status=500, code="InternalError")  # every retry fails too
    with pytest.raises(errors.FSError):
        overlay.appendbytes("big.bin", b"!")
    s3.reset()
    assert overlay.getsize("big.bin") == 20 * 1024 * 1024
    assert not upper.exists("big.bin")
    assert upper.listdir("/.unionfs/tmp") == []  # the failed copy-up cleaned up after itself
    assert OverlayFS([url], upper=upper).fsck(repair=False).clean


def test_s3_upper_is_refused_with_the_way_out(base, s3):
    bucket, url = base
    with pytest.raises(UnsupportedLayer, match="export_upper"):
        OverlayFS([url], upper="s3://%s/upper" % bucket)


# -- publishing a worker's upper ----------------------------------------------------------------


def test_published_upper_stacks_to_the_same_view(base, s3, tmp_path):
    bucket, url = base
    upper = OSFS(str(tmp_path), create=True)
    worker = OverlayFS([url], upper=upper)
    worker.writetext("etc/motd", "worker's motd")
    worker.remove("etc/hosts")
    worker.removetree("a/b")
    worker.makedirs("new/empty")
    worker.writebytes("new/data.bin", b"\0" * 1000)
    layer = "s3://%s/layers/worker" % bucket
    assert worker.export_upper(layer) > 0
    stacked = OverlayFS([layer, url], upper=MemoryFS())
    assert trees.snapshot(stacked) == trees.snapshot(worker)  # types and bytes
    with pytest.raises(errors.DirectoryNotEmpty, match="not empty"):
        worker.export_upper(layer)


# -- eight workers over one base ----------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, random, sys
    from fs.osfs import OSFS
    from unionfs import OverlayFS

    url, upper_dir, number, publish = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    overlay = OverlayFS([url], upper=OSFS(upper_dir, create=True))
    prefixes = overlay.listdir("/")
    # the base as this worker sees it: every prefix listed, 50 of them (its own among them) read
    sample = random.Random(number).sample(range(500), 49) + [number]
    seen = {p: overlay.listdir("p%03d" % p) for p in sample}
    read = {p: overlay.readtext("p%03d/f07.txt" % p) for p in sample}
    overlay.writetext("p%03d/f00.txt" % number, "worker %d" % number)
    overlay.remove("p%03d/f01.txt" % (number + 100))
    overlay.writetext("only-%d.txt" % number, str(number))
    if publish != "-":
        overlay.export_upper(publish)
    print(json.dumps({
        "prefixes": len(prefixes),
        "listed": sorted(set(len(names) for names in seen.values())),
        "read_ok": all(text == "base %d 7" % p for p, text in read.items()),
        "others": sorted(n for n in overlay.listdir("/") if n.startswith("only-") and n != "only-%d.txt" % number),
        "mine": overlay.readtext("p%03d/f00.txt" % number),
        "removed": overlay.exists("p%03d/f01.txt" % (number + 100)),
    }))
    """
)


def test_eight_workers_over_one_base(s3, tmp_path):
    """Eight processes over one base of 10,000 objects in 500 prefixes, each with its own upper:
    all see the base, none sees another's writes, the base is byte-identical afterwards, and
    a ninth overlay stacked on worker 3's published upper sees exactly worker 3's view."""
    bucket = s3.new_bucket()
    objects = {"base/p%03d/f%02d.txt" % (p, f): b"base %d %d" % (p, f) for p in range(500) for f in range(20)}
    s3.fill(bucket, objects)
    before = s3.state(bucket, "base/")
    assert len(before) == 10_000
    url = "s3://%s/base" % bucket
    published = "s3://%s/layers/worker3" % bucket
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = environ_for(s3)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(tmp_path / ("upper%d" % n)), str(n), published if n == 3 else "-"],
            stdout=subprocess.PIPE,
            env=env,
        )
        for n in range(8)
    ]
    for n, worker in enumerate(workers):
        out, _ = worker.communicate(timeout=900)
        assert worker.returncode == 0
        assert json.loads(out) == {
            "prefixes": 500, "listed": [20], "read_ok": True, "others": [], "mine": "worker %d" % n, "removed": False,
        }
    assert s3.state(bucket, "base/") == before  # keys, ETags and sizes
    assert not [r for r in s3.log() if r["method"] not in ("GET", "HEAD") and r["key"].startswith("base/")]
    # a ninth overlay stacked on worker 3's published upper sees exactly worker 3's view
    ninth = OverlayFS([published, url], upper=MemoryFS())
    expected = {"/" + key[len("base/"):] for key in objects} - {"/p103/f01.txt"} | {"/only-3.txt"}
    assert set(ninth.walk.files("/")) == expected
    assert ninth.readtext("p003/f00.txt") == "worker 3" and ninth.readtext("only-3.txt") == "3"
    assert ninth.readtext("p004/f00.txt") == "base 4 0"


# -- PyFilesystem2's conformance suite with an S3 lower ------------------------------------------


@pytest.mark.usefixtures("s3_class")
class TestS3LowerConformance(FSTestCases, unittest.TestCase):
    """The whole suite over a view whose every S3 object is whited out first."""

    server: S3Server

    def make_fs(self):
        bucket = self.server.new_bucket()
        self.server.fill(bucket, {"base/foo/bar/lower.txt": b"lower", "base/top.bin": b"x" * 1000, "base/suite/": b""})
        self._bucket, self._before = bucket, self.server.state(bucket)
        overlay = OverlayFS(["s3://%s/base" % bucket], upper=MemoryFS())
        overlay.removetree("/")
        return overlay

    def destroy_fs(self, fs):
        fs.close()
        assert self.server.state(self._bucket) == self._before, "the S3 base was modified"


@pytest.fixture(scope="class")
def s3_class(request, s3_server):
    saved = {name: os.environ.get(name) for name in s3_server.environ}
    os.environ.update(s3_server.environ)
    request.cls.server = s3_server
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_publication_cut_short_is_refused_when_stacked(base, s3, tmp_path):
    from unionfs.errors import SidecarError

    bucket, url = base
    worker = OverlayFS([url], upper=MemoryFS())
    worker.remove("etc/hosts")
    target = open_fsspec_url("s3://%s/layers/cut" % bucket, writable=True)
    written = []
    real_openbin = target.openbin

    def failing_openbin(path, mode="r", *args, **kwargs):
        if "w" in mode and written:  # the connection drops after the first object
            raise errors.RemoteConnectionError(path, msg="connection lost")
        written.append(path)
        return real_openbin(path, mode, *args, **kwargs)

    target.openbin = failing_openbin  # type: ignore[method-assign]
    with pytest.raises(errors.RemoteConnectionError):
        worker.export_upper(target)
    with pytest.raises((SidecarError, UnsupportedLayer)):
        OverlayFS(["s3://%s/layers/cut" % bucket, url], upper=MemoryFS())


def test_commit_into_an_s3_prefix_writes_the_merged_view(base, s3):
    bucket, url = base
    overlay = OverlayFS([url], upper=MemoryFS())
    overlay.writetext("etc/motd", "committed")
    overlay.remove("big.bin")
    overlay.commit("s3://%s/merged" % bucket)
    merged = open_fsspec_url("s3://%s/merged" % bucket)
    assert merged.readtext("etc/motd") == "committed"
    assert not merged.exists("big.bin") and merged.readbytes("a/b/c/d.txt") == b"deep"
    assert merged.listdir("empty") == []


def test_cli_lists_an_s3_layer(base, s3, capsys):
    from unionfs.tools.cli import main

    bucket, url = base
    assert main(["list", "-l", url, "/etc"]) == 0
    assert capsys.readouterr().out.split() == ["hosts", "motd"]


def test_cli_publishes_an_upper_to_s3(base, s3, tmp_path, capsys):
    from unionfs.tools.cli import main

    bucket, url = base
    upper = tmp_path / "upper"
    with OverlayFS([url], upper=OSFS(str(upper), create=True)) as worker:
        worker.writetext("etc/motd", "from the cli")
        worker.remove("etc/hosts")
    layer = "s3://%s/layers/cli" % bucket
    assert main(["export-upper", "-l", url, "-u", str(upper), layer]) == 0
    assert "published the upper into %s" % layer in capsys.readouterr().out
    stacked = OverlayFS([layer, url])
    assert stacked.readtext("etc/motd") == "from the cli" and stacked.listdir("etc") == ["motd"]


def test_any_fsspec_filesystem_is_a_layer():
    """The adapter is fsspec's, not S3's: fsspec's own in-memory filesystem as a lower."""
    fsspec = pytest.importorskip("fsspec")
    store = fsspec.filesystem("memory", skip_instance_cache=True)
    store.pipe_file("/fleet/base/a.txt", b"A")
    store.pipe_file("/fleet/base/d/b.txt", b"B")
    store.makedirs("/fleet/base/empty", exist_ok=True)
    before = {entry["name"]: store.cat_file(entry["name"]) for entry in store.find("/fleet", detail=True).values()}
    overlay = OverlayFS([FsspecFS(store, "/fleet/base")], upper=MemoryFS())
    assert overlay.listdir("/") == ["a.txt", "d", "empty"] and overlay.readbytes("d/b.txt") == b"B"
    overlay.remove("a.txt")
    overlay.appendbytes("d/b.txt", b"!")
    assert sorted(overlay.listdir("/")) == ["d", "empty"] and overlay.readbytes("d/b.txt") == b"B!"
    after = {entry["name"]: store.cat_file(entry["name"]) for entry in store.find("/fleet", detail=True).values()}
    assert after == before


def test_the_tests_s3_server_leaves_nothing_behind(s3_server: S3Server) -> None:
    """A server of the tests' S3 (as the session's is) removes its directory, port file and
    log included, when it stops: a test run leaves no ``unionfs-s3-*`` in the temp dir."""
    server = S3Server()
    directory = server._dir
    assert sorted(os.listdir(directory)) == ["log", "port"]
    server.stop()
    assert not os.path.exists(directory)
