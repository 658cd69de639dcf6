"""A real S3 endpoint on loopback for the tests: moto in server mode, in its own process.

Around moto's WSGI application sits a small recorder, so tests can assert what a client
really sent (every request the server answered, by method and kind), inject throttling or
server errors, and hold credentials that may only read (any other request from them is
refused with AccessDenied, as an IAM read-only policy would). Control requests go to
``/_unionfs/...`` and are not recorded.

Run as ``python s3server.py PORT_FILE``: it binds 127.0.0.1 on a free port, writes the port
to PORT_FILE and serves until killed.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from typing import Any, Callable, Dict, Iterable, List
from urllib.parse import parse_qs

#: access key ids that may only read (GET and HEAD)
READ_ONLY_KEYS = ("readonly",)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)")


class Recorder:
    """WSGI middleware: records, refuses and injects faults in front of moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.log: List[Dict[str, Any]] = []
        self.faults: List[Dict[str, Any]] = []

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_unionfs/"):
            return self._control(environ, start_response, path[len("/_unionfs/") :])
        method = environ["REQUEST_METHOD"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        key_id = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        parts = path.lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        kind = method
        if method == "GET" and not key:
            kind = "LIST" if bucket else "LISTBUCKETS"
        record = {
            "method": method,
            "kind": kind,
            "bucket": bucket,
            "key": key,
            "prefix": query.get("prefix", [""])[0],
            "range": environ.get("HTTP_RANGE"),
            "key_id": key_id.group(1) if key_id else None,
        }
        with self.lock:
            self.log.append(record)
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return _error(start_response, fault["status"], fault["code"], fault["message"])
        if record["key_id"] in READ_ONLY_KEYS and method not in ("GET", "HEAD"):
            return _error(start_response, 403, "AccessDenied", "Access Denied")
        return self.app(environ, start_response)

    def _control(self, environ: Dict[str, Any], start_response: Callable[..., Any], action: str) -> Iterable[bytes]:
        body: Any = {"ok": True}
        with self.lock:
            if action == "log":
                body = self.log
            elif action == "reset":
                self.log = []
                self.faults = []
            elif action == "fill":
                # objects put straight into moto's backend: a base of 10,000 objects in a
                # second instead of 10,000 PUTs through HTTP (the requests under test are reads)
                from moto.core import DEFAULT_ACCOUNT_ID
                from moto.s3.models import s3_backends

                length = int(environ.get("CONTENT_LENGTH") or 0)
                request = json.loads(environ["wsgi.input"].read(length))
                backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
                for key, text in request["objects"].items():
                    backend.put_object(request["bucket"], key, text.encode("latin-1"))
            elif action == "fault":
                query = parse_qs(environ.get("QUERY_STRING", ""))
                count = int(query.get("count", ["1"])[0])
                fault = {
                    "status": int(query.get("status", ["503"])[0]),
                    "code": query.get("code", ["SlowDown"])[0],
                    "message": query.get("message", ["Please reduce your request rate."])[0],
                }
                self.faults.extend([fault] * count)
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _error(start_response: Callable[..., Any], status: int, code: str, message: str) -> Iterable[bytes]:
    data = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>' % (code, message)
    ).encode()
    reason = {403: "Forbidden", 500: "Internal Server Error", 503: "Slow Down"}.get(status, "Error")
    start_response("%d %s" % (status, reason), [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
    return [data]


def main(port_file: str) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = Recorder(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(server.server_port))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
