"""Make ``tests/data/site-template.tar.gz``, the pristine site template ``tests/test_config.py``
tests against (a real project would keep its template in the repository)."""

import io
import os
import tarfile

FILES = {"etc/site.conf": b"listen = 8080\n", "var/log/app.log": b"started\n"}

os.makedirs("tests/data", exist_ok=True)
with tarfile.open("tests/data/site-template.tar.gz", "w:gz") as archive:
    for name, data in sorted(FILES.items()):
        member = tarfile.TarInfo(name)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
