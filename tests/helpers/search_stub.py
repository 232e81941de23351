"""A local stand-in for an external search service (Elasticsearch's `_search` shape), for the
http strategy's tests: it scores items by the query words they contain."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.model import Item
from core.text import tokens


class SearchStub:
    """`with SearchStub(items) as stub:` serves POST /<any>/_search on 127.0.0.1:<stub.port>."""

    def __init__(self, items: Iterable[Item], port: int = 0) -> None:
        self.docs = {it.id: set(tokens(" ".join(it.fields.values()))) for it in items}
        self.requests = 0
        self.fail = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub.requests += 1
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                if stub.fail or not self.path.endswith("/_search"):
                    self.send_response(503 if stub.fail else 404)
                    self.end_headers()
                    return
                words = set(tokens(body["query"]["multi_match"]["query"]))
                scored = sorted(((len(words & d), i) for i, d in stub.docs.items() if words & d),
                                key=lambda p: (-p[0], p[1]))[: int(body.get("size", 10))]
                out = json.dumps({"hits": {"hits": [{"_id": i, "_score": float(s)} for s, i in scored]}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/tracks/_search"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SearchStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
