"""MLflow 2.x's one-import server computes one request at a time, but a slow client holds up no one."""

from __future__ import annotations

import io
import threading
import time

from ood_mlflow.server.in_process import one_at_a_time


class Busy:
    """A WSGI app that takes a while and records how many requests it computes at once."""

    def __init__(self):
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.bodies = []

    def __call__(self, environ, start_response):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.bodies.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        start_response("200 OK", [])
        return [b"done"]


def call(app, body: bytes = b"", stream=None):
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "wsgi.input": stream or io.BytesIO(body)}
    return b"".join(app(environ, lambda status, headers: None))


def test_requests_sent_at_once_are_computed_one_after_the_other():
    busy = Busy()
    app = one_at_a_time(busy)
    threads = [threading.Thread(target=call, args=(app, b'{"n": %d}' % i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert busy.most == 1
    assert sorted(busy.bodies) == [b'{"n": %d}' % i for i in range(4)]


class Trickle(io.RawIOBase):
    """A request body that arrives only when released: a client on the node that sends headers, then waits."""

    def __init__(self, release: threading.Event):
        self.release = release

    def read(self, size=-1):
        self.release.wait(10)
        return b"{}"


def test_a_client_that_never_sends_its_body_holds_up_no_one():
    busy, release = Busy(), threading.Event()
    app = one_at_a_time(busy)
    stuck = threading.Thread(target=call, args=(app, b"{}", Trickle(release)))
    stuck.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert call(app, b'{"a": 1}') == b"done"
    assert time.monotonic() - start < 1, "a slow sender held the others' turn"
    release.set()
    stuck.join()
    assert busy.most == 1
