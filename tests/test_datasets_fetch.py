"""fetch_ucr / fetch_physionet against a local HTTP server on 127.0.0.1.

No test touches the internet: a ThreadingHTTPServer in a background thread
serves files built here, and can truncate a response on request.
"""

import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sciamba.datasets import (
    ChecksumError,
    DownloadError,
    fetch_physionet,
    fetch_ucr,
    get_data_home,
    read_ucr,
    read_wfdb,
)


class _Server:
    """Serves ``files`` (path -> bytes); paths in ``truncate`` send half the body."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _ts_bytes(X, y):
    lines = ["@problemName Toy", "@classLabel true 0 1", "@data"]
    lines += [",".join(repr(float(v)) for v in x[0]) + f":{lab}" for x, lab in zip(X, y)]
    return ("\n".join(lines) + "\n").encode()


def _toy_zip(rng):
    X_train, X_test = rng.standard_normal((6, 1, 9)), rng.standard_normal((4, 1, 9))
    y_train, y_test = rng.integers(0, 2, 6), rng.integers(0, 2, 4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Toy/Toy_TRAIN.ts", _ts_bytes(X_train, y_train))
        zf.writestr("Toy/Toy_TEST.ts", _ts_bytes(X_test, y_test))
        zf.writestr("Toy/readme.txt", "ignored")
    return buf.getvalue(), (X_train, y_train, X_test, y_test)


def test_get_data_home_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIAMBA_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env" and (tmp_path / "env").is_dir()
    monkeypatch.delenv("SCIAMBA_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == tmp_path / "home" / "sciamba_data"
    assert get_data_home(tmp_path / "x") == tmp_path / "x"


def test_fetch_ucr_downloads_once_and_reuses_cache(server, tmp_path, rng, capsys):
    payload, (X_train, y_train, X_test, y_test) = _toy_zip(rng)
    server.files["/Toy.zip"] = payload
    digest = hashlib.sha256(payload).hexdigest()
    X, y = fetch_ucr("Toy", data_home=tmp_path, base_url=server.url, sha256=digest)
    np.testing.assert_array_equal(X, X_train)
    np.testing.assert_array_equal(y, y_train)
    assert "Toy.zip" in capsys.readouterr().err  # the tqdm progress bar
    X, y = fetch_ucr("Toy", "test", data_home=tmp_path, base_url=server.url, progress=False)
    np.testing.assert_array_equal(X, X_test)
    assert server.requests == ["/Toy.zip"]  # the second call used the cache
    assert not list(tmp_path.rglob("*.part"))
    # read_ucr finds the downloaded set by name in the data home.
    np.testing.assert_array_equal(read_ucr(tmp_path / "ucr" / "Toy", split="test")[1], y_test)


def test_fetch_ucr_records_first_digest_and_detects_a_changed_cache(server, tmp_path, rng):
    payload, _ = _toy_zip(rng)
    server.files["/Toy.zip"] = payload
    fetch_ucr("Toy", data_home=tmp_path, base_url=server.url, progress=False)
    ledger = (tmp_path / "ucr" / "checksums.json").read_text()
    assert hashlib.sha256(payload).hexdigest() in ledger
    # Remove the extracted files and replace the upstream file: the cached zip
    # is still right and is reused; a fresh download would not match.
    for p in (tmp_path / "ucr" / "Toy").iterdir():
        p.unlink()
    (tmp_path / "ucr" / "Toy.zip").unlink()
    server.files["/Toy.zip"] = _toy_zip(rng)[0]
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch_ucr("Toy", data_home=tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "ucr" / "Toy.zip").exists()
    assert not list(tmp_path.rglob("*.part"))


def test_fetch_ucr_wrong_checksum_deletes_file(server, tmp_path, rng):
    server.files["/Toy.zip"] = _toy_zip(rng)[0]
    with pytest.raises(ChecksumError, match="the downloaded file was deleted"):
        fetch_ucr("Toy", data_home=tmp_path, base_url=server.url, sha256="0" * 64, progress=False)
    assert list((tmp_path / "ucr").iterdir()) == []


def test_fetch_ucr_truncated_download(server, tmp_path, rng):
    server.files["/Toy.zip"] = _toy_zip(rng)[0]
    server.truncate.add("/Toy.zip")
    with pytest.raises(DownloadError, match="was truncated"):
        fetch_ucr("Toy", data_home=tmp_path, base_url=server.url, progress=False)
    assert list((tmp_path / "ucr").iterdir()) == []


def test_fetch_ucr_not_a_zip_and_http_404(server, tmp_path):
    server.files["/Bad.zip"] = b"<html>not a zip</html>"
    with pytest.raises(ChecksumError, match="not a valid UCR archive"):
        fetch_ucr("Bad", data_home=tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "ucr" / "Bad.zip").exists()
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_ucr("Missing", data_home=tmp_path, base_url=server.url, progress=False)


def test_fetch_offline_gives_clear_error(tmp_path):
    # A port nobody listens on: connection refused, as when offline.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(DownloadError, match="Check the internet connection"):
        fetch_ucr("Toy", data_home=tmp_path, base_url=f"http://127.0.0.1:{port}/", progress=False)
    with pytest.raises(DownloadError, match="could not download"):
        fetch_physionet("100", data_home=tmp_path, base_url=f"http://127.0.0.1:{port}/")
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "../etc"}, "must be a UCR/UEA dataset name"),
        ({"name": "Toy", "split": "val"}, "split must be 'train' or 'test'"),
    ],
)
def test_fetch_ucr_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_ucr(data_home=tmp_path, **kwargs)


def _physionet_site(server, tmp_path, rng, *, corrupt_dat=False):
    wfdb = pytest.importorskip("wfdb")
    src = tmp_path / "site"
    src.mkdir()
    n = int(rng.integers(400, 900))
    signal = rng.standard_normal((n, 2)) * 0.3
    wfdb.wrsamp(
        "rec1",
        fs=128,
        units=["mV", "mV"],
        sig_name=["ECG1", "ECG2"],
        p_signal=signal,
        fmt=["212", "212"],
        write_dir=str(src),
    )
    samples = np.sort(rng.choice(n, size=5, replace=False))
    wfdb.wrann("rec1", "atr", samples, symbol=["N"] * 5, write_dir=str(src))
    sums = []
    for path in sorted(src.iterdir()):
        body = path.read_bytes()
        server.files[f"/db/1.0/{path.name}"] = body
        digest = hashlib.sha256(body).hexdigest()
        if corrupt_dat and path.suffix == ".dat":
            digest = "f" * 64
        sums.append(f"{digest} {path.name}")
    server.files["/db/1.0/SHA256SUMS.txt"] = ("\n".join(sums) + "\n").encode()
    return signal, samples


def test_fetch_physionet_round_trip_and_cache(server, tmp_path, rng):
    signal, samples = _physionet_site(server, tmp_path, rng)
    home = tmp_path / "home"
    record = fetch_physionet("rec1", "db", version="1.0", data_home=home, base_url=server.url)
    assert record == home / "physionet" / "db" / "1.0" / "rec1"
    ds = read_wfdb(record)
    assert ds["signal"].shape == (2, len(signal))
    # Format 212 quantises to the ADC gain chosen by wrsamp: half a count.
    gain = pytest.importorskip("wfdb").rdheader(str(record)).adc_gain
    np.testing.assert_allclose(ds["signal"].values, signal.T, atol=0.51 / min(gain))
    np.testing.assert_array_equal(ds.ann_sample.values, samples)
    n_requests = len(server.requests)
    assert sorted(server.requests) == sorted(
        ["/db/1.0/SHA256SUMS.txt", "/db/1.0/rec1.hea", "/db/1.0/rec1.dat", "/db/1.0/rec1.atr"]
    )
    fetch_physionet("rec1", "db", version="1.0", data_home=home, base_url=server.url)
    assert len(server.requests) == n_requests  # everything came from the cache


def test_fetch_physionet_wrong_checksum_and_unknown_record(server, tmp_path, rng):
    _physionet_site(server, tmp_path, rng, corrupt_dat=True)
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch_physionet("rec1", "db", version="1.0", data_home=home, base_url=server.url)
    folder = home / "physionet" / "db" / "1.0"
    assert not (folder / "rec1.dat").exists() and not list(folder.glob("*.part"))
    with pytest.raises(ChecksumError, match="not listed in"):
        fetch_physionet("rec2", "db", version="1.0", data_home=home, base_url=server.url)


def test_fetch_physionet_truncated(server, tmp_path, rng):
    _physionet_site(server, tmp_path, rng)
    server.truncate.add("/db/1.0/rec1.dat")
    home = tmp_path / "home"
    with pytest.raises(DownloadError, match="was truncated"):
        fetch_physionet("rec1", "db", version="1.0", data_home=home, base_url=server.url)
    folder = home / "physionet" / "db" / "1.0"
    assert not (folder / "rec1.dat").exists() and not list(folder.glob("*.part"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"record": "../x"}, "record must be a relative PhysioNet path"),
        ({"record": "100", "database": "a//b"}, "database must be"),
        ({"record": "100", "annotators": ("a.b",)}, "annotator must be a file extension"),
    ],
)
def test_fetch_physionet_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_physionet(data_home=tmp_path, **kwargs)
