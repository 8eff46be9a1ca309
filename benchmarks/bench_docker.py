"""Docker image figures: first build vs a no-change rebuild (and a smoke-script edit), and the image's size
against the framework's installed environment (du of /opt/venv): what the image adds.

Needs an engine (DOCKER_HOST; ./scripts/start-docker-engine) and the base image (./scripts/make-base-image).
The default image is the one CI builds: PyTorch 2.13.0 CPU from the wheelhouse on fwsetup/bookworm-base.

    .venv/bin/python benchmarks/bench_docker.py                  # first build (--no-cache), rebuild, edit
    .venv/bin/python benchmarks/bench_docker.py --rebuilds 3 --json > benchmarks/results/docker.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fwsetup.backends.docker import DockerBackend, DockerEngine, ImageOptions
from fwsetup.backends.engine import RunSpec
from fwsetup.detect import get_host
from fwsetup.plan import build_request
from fwsetup.plan.container import linux_profile, plan_image
from fwsetup.recipes import load_recipes


def du_in_image(engine: DockerEngine, image: str, path: str) -> int:
    res = engine.run(
        RunSpec(image=image, command=["du", "-sb", path], network="none", user="root", timeout=300)
    )
    if res.exit_code != 0:
        raise SystemExit(f"du failed in {image}: {res.stderr.strip()}")
    return int(res.stdout.split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", default="pytorch")
    ap.add_argument("--version", default="2.13.0")
    ap.add_argument("--base", default="fwsetup/bookworm-base:latest")
    ap.add_argument("--wheelhouse", type=Path, default=Path("/opt/wheels"))
    ap.add_argument("--tag", default="fwsetup-bench/pytorch:bench")
    ap.add_argument("--rebuilds", type=int, default=3, help="no-change rebuilds to time (median)")
    ap.add_argument("--no-first", action="store_true", help="skip the --no-cache first build (use the cache)")
    ap.add_argument("--no-edit", action="store_true", help="skip the smoke-script edit rebuild")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    engine = DockerEngine()
    info = engine.check()
    if engine.image_size(args.base) is None:
        raise SystemExit(f"base image {args.base} missing: run ./scripts/make-base-image")
    request = build_request(args.framework, cpu=True, version=args.version, method="docker")
    plan, _ = plan_image(
        load_recipes().get(args.framework), linux_profile(get_host()), request, base=args.base
    )
    backend = DockerBackend(engine)
    # A snapshot of the smoke scripts: an edit to them in the checkout mid-run must not count as a rebuild.
    from fwsetup.smoke import SMOKE_DIR

    snapshot = Path(tempfile.mkdtemp(prefix="fwsetup-bench-smoke-"))
    shutil.copytree(SMOKE_DIR, snapshot / "smoke", ignore=shutil.ignore_patterns("__pycache__"))
    opts = ImageOptions(
        env=dict(os.environ),
        base=args.base,
        wheelhouse=args.wheelhouse,
        tag=args.tag,
        smoke_dir=snapshot / "smoke",
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    figures: dict[str, object] = {
        "engine": f"Docker {info.server_version}", "builder": "buildx" if info.buildkit else "classic",
        "image": args.tag, "framework": f"{plan.framework} {plan.version} {plan.variant}", "base": args.base,
    }  # fmt: skip
    t0 = time.monotonic()
    first = backend.build_image(plan, ImageOptions(**{**opts.__dict__, "no_cache": not args.no_first}))
    figures["first_total_s"] = round(time.monotonic() - t0, 1)  # context, build, size, smoke test
    figures["first_build_s"] = round(first.build.seconds, 1)  # the engine's build alone
    figures["first_build_steps"] = len(first.build.steps)
    figures["first_build_cached_steps"] = first.build.cached_steps
    figures["smoke_container_s"] = round(first.smoke_seconds or 0, 1)
    figures["smoke_train_s"] = first.smoke.get("seconds") if first.smoke else None
    log(
        f"first build: {figures['first_build_s']} s ({first.build.cached_steps}/{len(first.build.steps)} steps cached)"
    )

    times = []
    for i in range(args.rebuilds):
        t = time.monotonic()
        again = backend.build_image(plan, ImageOptions(**{**opts.__dict__, "run_smoke": False}))
        times.append(time.monotonic() - t)
        assert not again.build.rebuilt, [s.instruction for s in again.build.rebuilt]
        log(f"no-change rebuild {i + 1}: {times[-1]:.1f} s")
    if times:
        figures["rebuild_s_median"] = round(statistics.median(times), 2)
        figures["rebuild_vs_first"] = round(statistics.median(times) / first.build.seconds, 4)

    if not args.no_edit:
        with tempfile.TemporaryDirectory() as tmp:
            smoke = Path(tmp) / "smoke"
            shutil.copytree(snapshot / "smoke", smoke)
            script = next(smoke.glob(f"train_{plan.smoke.script if plan.smoke else args.framework}.py"))
            script.write_text(script.read_text() + f"\n# bench edit {time.time()}\n")
            t = time.monotonic()
            edited = backend.build_image(
                plan,
                ImageOptions(
                    **{**opts.__dict__, "smoke_dir": smoke, "run_smoke": False, "tag": args.tag + "-edit"}
                ),
            )
            figures["smoke_edit_rebuild_s"] = round(time.monotonic() - t, 1)
            figures["smoke_edit_rebuilt_steps"] = [s.instruction[:40] for s in edited.build.rebuilt]
            log(f"smoke-script edit rebuild: {figures['smoke_edit_rebuild_s']} s")
            engine.client.images.remove(args.tag + "-edit")

    shutil.rmtree(snapshot, ignore_errors=True)
    image = engine.image_size(args.tag) or 0
    base = engine.image_size(args.base) or 0
    venv = du_in_image(engine, args.tag, "/opt/venv")
    figures.update(
        image_bytes=image, base_bytes=base, venv_bytes=venv,
        overhead_bytes=image - base - venv,  # user, metadata, smoke script: what fwsetup adds beyond base + env
        image_vs_venv=round(image / venv, 3) if venv else None,
    )  # fmt: skip
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        mb = 1e6
        print(f"engine            {figures['engine']} ({figures['builder']} builder), base {args.base}")
        print(f"first build       {figures['first_build_s']} s  ({figures['first_build_steps']} steps, no cache; "
              f"{figures['first_total_s']} s with context and smoke test)")  # fmt: skip
        if times:
            print(f"no-change rebuild {figures['rebuild_s_median']} s median of {len(times)}  "
                  f"({100 * float(figures['rebuild_vs_first']):.1f}% of the first)")  # type: ignore[arg-type]  # fmt: skip
        if "smoke_edit_rebuild_s" in figures:
            print(
                f"smoke edit        {figures['smoke_edit_rebuild_s']} s  (rebuilt: {figures['smoke_edit_rebuilt_steps']})"
            )
        print(
            f"smoke container   {figures['smoke_container_s']} s wall (training {figures['smoke_train_s']} s)"
        )
        print(f"image             {image / mb:.0f} MB: base {base / mb:.0f} MB + venv {venv / mb:.0f} MB (du -sb) "
              f"{(image - base - venv) / mb:+.1f} MB; image / venv = {figures['image_vs_venv']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
