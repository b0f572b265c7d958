"""A local stand-in for the Zenodo REST API (the subset xares-hf uses), serving real files, with faults on demand."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeZenodo:
    """``records[id] = {key: bytes}``; ``faults`` tweak behaviour: ``cut`` (key -> bytes sent before the
    connection drops, once), ``status`` (path -> list of statuses to answer first, with ``retry_after[path]``
    as their Retry-After, default 0), ``bad_checksum`` (keys), ``seconds_per_kib`` (a pause after every KiB
    sent, to make downloads slow enough to interrupt), ``extra`` (key -> junk bytes sent after the file, counted
    in Content-Length unless the key is in ``no_length``), ``raw_records`` (id -> the record's JSON as given:
    odd or hostile entries; :meth:`entry` builds a well-formed one to start from)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, bytes]] = {}
        self.cut: dict[str, int] = {}
        self.status: dict[str, list[int]] = {}
        self.bad_checksum: set[str] = set()
        self.seconds_per_kib = 0.0
        self.retry_after: dict[str, str] = {}
        self.extra: dict[str, int] = {}
        self.no_length: set[str] = set()
        self.raw_records: dict[str, object] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                queued = server.status.get(self.path)
                if queued:
                    code = queued.pop(0)
                    self.send_response(code)
                    self.send_header("Retry-After", server.retry_after.get(self.path, "0"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = self.path.strip("/").split("/")
                if parts[:2] == ["api", "records"] and parts[2] in server.raw_records:
                    raw = server.raw_records[parts[2]]
                    return self._json(raw) if not isinstance(raw, bytes) else self._body(raw)
                if parts[:2] == ["api", "records"] and parts[2] in server.records:
                    return self._json(server.record_json(parts[2]))
                if parts[0] == "files" and parts[1] in server.records and parts[2] in server.records[parts[1]]:
                    return self._file(parts[2], server.records[parts[1]][parts[2]])
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _json(self, data: object) -> None:
                self._body(json.dumps(data).encode())

            def _body(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, key: str, data: bytes) -> None:
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if key not in server.no_length:
                    self.send_header("Content-Length", str(len(data) - start + server.extra.get(key, 0)))
                self.end_headers()
                if key in server.extra:
                    return self._junk(data[start:], server.extra[key])
                if key in server.cut:
                    self.wfile.write(data[start : server.cut.pop(key)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if not server.seconds_per_kib:
                    self.wfile.write(data[start:])
                    return
                for offset in range(start, len(data), 1024):
                    self.wfile.write(data[offset : offset + 1024])
                    self.wfile.flush()
                    time.sleep(server.seconds_per_kib)

            def _junk(self, data: bytes, extra: int) -> None:
                try:
                    self.wfile.write(data)
                    for _ in range(0, extra, 1 << 16):
                        self.wfile.write(b"\0" * (1 << 16))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def record_json(self, record_id: str) -> dict:
        return {"id": record_id, "files": [self.entry(record_id, key) for key in self.records[record_id]]}

    def entry(self, record_id: str, key: str, as_key: str | None = None) -> dict:
        """A record's file entry for ``records[record_id][key]`` (listed under ``as_key`` when given)."""
        data = self.records[record_id][key]
        digest = hashlib.md5(data).hexdigest() if key not in self.bad_checksum else "0" * 32
        return {"key": as_key if as_key is not None else key, "size": len(data), "checksum": f"md5:{digest}",
                "links": {"self": f"{self.url}/files/{record_id}/{key}"}}

    def add_folder(self, record_id: str, folder: Path) -> None:
        self.records[record_id] = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

    def __enter__(self) -> "FakeZenodo":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
