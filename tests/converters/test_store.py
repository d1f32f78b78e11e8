"""`thrifty-store` against a real S3-compatible server (moto's server) on loopback."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from thrifty_converters import store


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import boto3

    env = {
        "AWS_ACCESS_KEY_ID": "thrifty",
        "AWS_SECRET_ACCESS_KEY": "thrifty-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="artifacts")
    return env


def test_store_push_then_pull_round_trips_a_folder(s3_env: dict[str, str], tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    (src / "model_repository" / "m" / "1").mkdir(parents=True)
    (src / "model_repository" / "m" / "config.pbtxt").write_text('name: "m"')
    (src / "model_repository" / "m" / "1" / "model.onnx").write_bytes(b"\x00\x01")
    assert store.push(src, "s3://artifacts/abc123") == 2
    assert store.pull("s3://artifacts/abc123/model_repository", tmp_path / "dst") == 2
    assert (tmp_path / "dst" / "m" / "1" / "model.onnx").read_bytes() == b"\x00\x01"


def test_store_run_pushes_only_when_the_command_succeeds(
    s3_env: dict[str, str], tmp_path: pathlib.Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ok = [sys.executable, "-c", f"import pathlib; pathlib.Path({str(work / 'out.txt')!r}).write_text('ok')"]
    assert store.main(["run", "--push", str(work), "s3://artifacts/run-ok", "--", *ok]) == 0
    assert store.pull("s3://artifacts/run-ok", tmp_path / "back") == 1
    fail = [sys.executable, "-c", "raise SystemExit(3)"]
    assert store.main(["run", "--push", str(work), "s3://artifacts/run-fail", "--", *fail]) == 3
    assert store.pull("s3://artifacts/run-fail", tmp_path / "none") == 0


def test_store_reports_a_missing_bucket_in_one_line(s3_env: dict[str, str], tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thrifty_converters.store", "pull", "s3://no-such-bucket/x", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**s3_env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no-such-bucket" in result.stderr
    assert "Traceback" not in result.stderr


def test_store_rejects_non_s3_uris() -> None:
    with pytest.raises(store.StoreError, match="not an s3:// URI"):
        store.split_uri("gs://bucket/key")
