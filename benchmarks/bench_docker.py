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

from fwsetup.backends.docker.backend import DockerBackend
from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.backends.docker.render import ImageOptions
from fwsetup.backends.engine import RunSpec
from fwsetup.detect import get_host
from fwsetup.plan import build_request
from fwsetup.plan.container import linux_profile, plan_image
from fwsetup.recipes.load import load_recipes


def du_in_image(engine: DockerEngine, image: str, path: str) -> int:
    res = engine.run(
        RunSpec(image=image, command=["du", "-sb", path], network="none", user="root", timeout=300)
    )
    if res.exit_code != 0:
        raise SystemExit(f"du failed in {image}: {res.stderr.strip()}")
    return int(res.stdout.split()[0])


TARGET_REBUILD_S = 5.0  # no-change rebuild with BuildKit (benchmarks/README.md)
TARGET_IMAGE_RATIO = 1.10  # image size / (base image + venv)


def measure(args: argparse.Namespace, builder: str) -> dict[str, object]:
    """One builder's figures: first build, no-change rebuilds, a smoke-script edit, sizes."""
    engine = DockerEngine(buildkit=builder == "buildkit")
    info = engine.check()
    if builder == "buildkit" and not info.buildkit:
        raise SystemExit("no buildx here: run ./scripts/install-buildx, or --builder classic")
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
    tag = f"{args.tag}-{builder}"
    opts = ImageOptions(
        env=dict(os.environ), base=args.base, wheelhouse=args.wheelhouse, tag=tag, smoke_dir=snapshot / "smoke",
    )  # fmt: skip

    def log(msg: str) -> None:
        print(f"[{builder}] {msg}", file=sys.stderr, flush=True)

    figures: dict[str, object] = {
        "engine": f"Docker {info.server_version}", "builder": builder, "bridge": info.bridge,
        "image": tag, "framework": f"{plan.framework} {plan.version} {plan.variant}", "base": args.base,
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
        f"first build: {figures['first_build_s']} s ({first.build.cached_steps}/{len(first.build.steps)} cached)"
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
                plan, ImageOptions(**{**opts.__dict__, "smoke_dir": smoke, "run_smoke": False, "tag": tag + "-edit"})
            )  # fmt: skip
            figures["smoke_edit_rebuild_s"] = round(time.monotonic() - t, 1)
            figures["smoke_edit_rebuilt_steps"] = [st.instruction[:40] for st in edited.build.rebuilt]
            log(f"smoke-script edit rebuild: {figures['smoke_edit_rebuild_s']} s")
            engine.client.images.remove(tag + "-edit")

    shutil.rmtree(snapshot, ignore_errors=True)
    image = engine.image_size(tag) or 0
    base = engine.image_size(args.base) or 0
    venv = du_in_image(engine, tag, "/opt/venv")
    layers = engine.client.api.history(tag)
    figures.update(
        image_bytes=image, base_bytes=base, venv_bytes=venv,
        overhead_bytes=image - base - venv,  # user, metadata, smoke script: what fwsetup adds beyond base + env
        image_vs_venv=round(image / venv, 3) if venv else None,
        image_vs_base_plus_venv=round(image / (base + venv), 3) if base + venv else None,
        layers=[{"size": int(h.get("Size", 0)), "created_by": str(h.get("CreatedBy", ""))[:80]} for h in layers],
    )  # fmt: skip
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", default="pytorch")
    ap.add_argument("--version", default="2.13.0")
    ap.add_argument("--base", default="fwsetup/bookworm-base:latest")
    ap.add_argument("--wheelhouse", type=Path, default=Path("/opt/wheels"))
    ap.add_argument("--tag", default="fwsetup-bench/pytorch:bench", help="image tag; -BUILDER is appended")
    ap.add_argument("--builder", choices=("buildkit", "classic", "both"), default="both")
    ap.add_argument("--rebuilds", type=int, default=3, help="no-change rebuilds to time (median)")
    ap.add_argument("--no-first", action="store_true", help="skip the --no-cache first build (use the cache)")
    ap.add_argument("--no-edit", action="store_true", help="skip the smoke-script edit rebuild")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    builders = ["buildkit", "classic"] if args.builder == "both" else [args.builder]
    runs = {b: measure(args, b) for b in builders}
    checks: dict[str, dict[str, object]] = {}
    if "buildkit" in runs and "rebuild_s_median" in runs["buildkit"]:
        value = float(runs["buildkit"]["rebuild_s_median"])  # type: ignore[arg-type]
        checks["no-change rebuild with BuildKit"] = {"value_s": value, "target_s": TARGET_REBUILD_S,
                                                     "met": value <= TARGET_REBUILD_S}  # fmt: skip
    for b, f in runs.items():
        ratio = float(f["image_vs_base_plus_venv"] or 0)  # type: ignore[arg-type]
        checks[f"image / (base + venv), {b}"] = {"value": ratio, "target": TARGET_IMAGE_RATIO,
                                                "met": 0 < ratio <= TARGET_IMAGE_RATIO}  # fmt: skip
    if args.json:
        print(json.dumps({"runs": runs, "targets": checks}, indent=2))
        return 0 if all(c["met"] for c in checks.values()) else 1
    mb = 1e6
    for b, f in runs.items():
        image, base, venv = (int(f[k]) for k in ("image_bytes", "base_bytes", "venv_bytes"))  # type: ignore[call-overload]
        print(
            f"== {b}: {f['engine']}, base {args.base}, {'bridge' if f['bridge'] else 'no bridge (host network)'}"
        )
        print(f"first build       {f['first_build_s']} s  ({f['first_build_steps']} steps, no cache; "
              f"{f['first_total_s']} s with context and smoke test)")  # fmt: skip
        if "rebuild_s_median" in f:
            print(f"no-change rebuild {f['rebuild_s_median']} s median of {args.rebuilds}  "
                  f"({100 * float(f['rebuild_vs_first']):.1f}% of the first)")  # type: ignore[arg-type]  # fmt: skip
        if "smoke_edit_rebuild_s" in f:
            print(
                f"smoke edit        {f['smoke_edit_rebuild_s']} s  (rebuilt: {f['smoke_edit_rebuilt_steps']})"
            )
        print(f"smoke container   {f['smoke_container_s']} s wall (training {f['smoke_train_s']} s)")
        print(f"image             {image / mb:.0f} MB: base {base / mb:.0f} MB + venv {venv / mb:.0f} MB (du -sb) "
              f"{(image - base - venv) / mb:+.2f} MB; image / venv = {f['image_vs_venv']}, "
              f"image / (base + venv) = {f['image_vs_base_plus_venv']}")  # fmt: skip
    for name, c in checks.items():
        print(f"target: {name}: {c.get('value_s', c.get('value'))} (<= {c.get('target_s', c.get('target'))}) "
              f"{'met' if c['met'] else 'NOT met'}")  # fmt: skip
    return 0 if all(c["met"] for c in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
