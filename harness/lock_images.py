"""Image pinning for compose: `lock` resolves tags to registry digests, `record` notes what ran.

    python -m harness.lock_images lock   [--out images.lock]          # make lock
    python -m harness.lock_images record --run results/<run> [--project distill-eval]

`lock` asks the registry (through the Docker engine, Docker SDK `get_registry_data`) for the manifest
digest of every pinned tag and writes `images.lock`, an env file compose reads after `.env`:
`LLAMA_CUDA_IMAGE=ghcr.io/ggml-org/llama.cpp:server-cuda-b11434@sha256:...`. A tag whose digest
cannot be fetched is NOT written (never a digest nobody verified); the command then exits 1 and
says which tags were unreachable.

`record` inspects the running containers of the compose project and writes
`<run>/images.json` (image reference, local image id, repo digests, per service), and adds the same
under "images" to `<run>/manifest.json` when that exists: the digest actually run, whether or not a
lock was used. Locally built images (no registry) are recorded by image id.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.io import atomic_write_json, atomic_write_text, utc_now

# Variable name in compose.yaml / compose.cpu.yaml -> the tag it defaults to.
PINNED_IMAGES = {
    "LLAMA_CUDA_IMAGE": "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434",
    "LLAMA_CPU_IMAGE": "ghcr.io/ggml-org/llama.cpp:server-b11434",
    "BASE_IMAGE": "debian:bookworm-slim",
}


def _client() -> Any:
    import docker

    client = docker.from_env(timeout=60)
    client.ping()
    return client


def resolve(client: Any, tag: str) -> str:
    """`tag@sha256:...` of the manifest the registry serves for `tag` now."""
    data = client.images.get_registry_data(tag)
    digest = data.id
    if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
        raise ValueError(f"registry returned no usable digest for {tag}: {digest!r}")
    return f"{tag.split('@')[0]}@{digest}"


def cmd_lock(args: argparse.Namespace) -> int:
    try:
        client = _client()
    except Exception as exc:
        print(f"error: Docker engine not reachable ({str(exc).splitlines()[0][:120]}): start it, then rerun `make lock`",
              file=sys.stderr)
        return 1
    lines, failed = [], []
    for var, tag in PINNED_IMAGES.items():
        try:
            ref = resolve(client, tag)
        except Exception as exc:
            failed.append(f"{tag} ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
            continue
        lines.append(f"{var}={ref}")
        print(f"locked  {var}={ref}")
    if failed:
        for f in failed:
            print(f"error: cannot resolve {f}", file=sys.stderr)
        print(f"error: {args.out} not written: {len(failed)} tag(s) could not be resolved (registry unreachable?); "
              "the stack keeps using the build-pinned tags", file=sys.stderr)
        return 1
    header = (f"# Written by `make lock` (python -m harness.lock_images lock) at {utc_now()}.\n"
              "# Each digest was returned by the registry for the tag named before '@'. Compose reads this\n"
              "# file after .env (see docker/Makefile.compose.mk). Regenerate; do not edit by hand.\n")
    atomic_write_text(Path(args.out), header + "\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


def running_images(client: Any, project: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        service = c.labels.get("com.docker.compose.service", c.name)
        image = c.image
        out[service] = {
            "container": c.name,
            "status": c.status,
            "image_ref": c.attrs.get("Config", {}).get("Image"),
            "image_id": image.id,
            "repo_digests": list(image.attrs.get("RepoDigests") or []),
            "repo_tags": list(image.tags or []),
            "created": image.attrs.get("Created"),
        }
    return dict(sorted(out.items()))


def cmd_record(args: argparse.Namespace) -> int:
    try:
        client = _client()
    except Exception as exc:
        print(f"error: Docker engine not reachable ({str(exc).splitlines()[0][:120]})", file=sys.stderr)
        return 1
    images = running_images(client, args.project)
    if not images:
        print(f"error: no containers of compose project {args.project!r}: start the stack first", file=sys.stderr)
        return 1
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    record = {"schema_version": SCHEMA_VERSION, "recorded": utc_now(), "project": args.project,
              "engine": client.version().get("Version"), "services": images}
    atomic_write_json(run / "images.json", record)
    manifest = run / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["images"] = record
        atomic_write_json(manifest, data)
    print(f"recorded {len(images)} service image(s) in {run / 'images.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.lock_images", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lk = sub.add_parser("lock", help="resolve the pinned tags to digests -> images.lock")
    lk.add_argument("--out", default="images.lock")
    lk.set_defaults(func=cmd_lock)
    rc = sub.add_parser("record", help="write the digests of the running stack into the run directory")
    rc.add_argument("--run", required=True)
    rc.add_argument("--project", default="distill-eval")
    rc.set_defaults(func=cmd_record)
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
