"""`thrifty-store`: move artifact folders between a pod's disk and S3-compatible object storage.

The operator wraps converter commands with it when the artifact store is S3:

    thrifty-store run --pull s3://bucket/prefix/<digest> DIR --push DIR s3://bucket/prefix/<digest> -- CMD ...

pulls what exists, runs CMD, and pushes DIR back only when CMD succeeded (its exit status is passed on).
Triton pods pull their model repository in an init container: `thrifty-store pull URI DIR`.
Credentials and the endpoint come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL), which the pods take from a Secret.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from . import signals


class StoreError(RuntimeError):
    """A transfer failed; the message is one line for the user."""


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/prefix` → (bucket, "key/prefix")."""
    if not uri.startswith("s3://"):
        raise StoreError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise StoreError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


def _client() -> Any:
    import boto3  # lazily: only S3 stores need it

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def pull(uri: str, dest: pathlib.Path) -> int:
    """Download every object under `uri` into `dest`, keeping relative paths; return the file count."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    client = _client()
    count = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""
        ):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix) :].lstrip("/")
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(target))
                count += 1
    except (BotoCoreError, ClientError) as err:
        raise StoreError(f"pulling {uri}: {err}") from err
    return count


def push(src: pathlib.Path, uri: str) -> int:
    """Upload every file under `src` to `uri`; return the file count."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    client = _client()
    count = 0
    try:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            key = "/".join(filter(None, [prefix, path.relative_to(src).as_posix()]))
            client.upload_file(str(path), bucket, key)
            count += 1
    except (BotoCoreError, ClientError, OSError) as err:
        raise StoreError(f"pushing {src} to {uri}: {err}") from err
    return count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thrifty-store", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pull", help="download URI into DIR")
    p.add_argument("uri")
    p.add_argument("dir", type=pathlib.Path)
    q = sub.add_parser("push", help="upload DIR to URI")
    q.add_argument("dir", type=pathlib.Path)
    q.add_argument("uri")
    r = sub.add_parser("run", help="pull, run a command, push on success")
    r.add_argument("--pull", nargs=2, metavar=("URI", "DIR"))
    r.add_argument("--push", nargs=2, metavar=("DIR", "URI"))
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors are one line on stderr and exit status 2."""
    args = _parser().parse_args(argv)
    signals.exit_on_sigterm()
    try:
        if args.command == "pull":
            print(f"thrifty-store: pulled {pull(args.uri, args.dir)} files from {args.uri}", file=sys.stderr)
            return 0
        if args.command == "push":
            print(f"thrifty-store: pushed {push(args.dir, args.uri)} files to {args.uri}", file=sys.stderr)
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            raise StoreError("run needs a command after --")
        if args.pull:
            pulled = pull(args.pull[0], pathlib.Path(args.pull[1]))
            print(f"thrifty-store: pulled {pulled} files from {args.pull[0]}", file=sys.stderr)
        child = subprocess.Popen(cmd)
        signals.forward_sigterm(child)
        code = child.wait()
        if code == 0 and args.push:
            pushed = push(pathlib.Path(args.push[0]), args.push[1])
            print(f"thrifty-store: pushed {pushed} files to {args.push[1]}", file=sys.stderr)
        return code
    except StoreError as err:
        print(f"thrifty-store: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
