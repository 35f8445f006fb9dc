"""Derivative pipeline benchmark, per class of JPEG, on one core.

    .venv/bin/python bench/derivatives.py                # 2 images per class, 3 rounds
    .venv/bin/python bench/derivatives.py --quick        # 1 image per class, 1 round
    .venv/bin/python bench/derivatives.py --procs 2      # also 1 vs 2 worker processes

Generates photographic JPEGs (gradients, texture, grain and shapes, q92)
once into var/bench/derivatives/, in six classes: 24 MP with an embedded
sRGB profile (EXIF orientations 1 and 6; 3 and 8), 24 MP Display P3, 24 MP
Adobe RGB (embedded profiles), 24 MP progressive sRGB, and 45 MP sRGB.
Pinned to one core with libvips single-threaded, it runs three ways of
making the large/medium/thumb WebPs at equal encoder settings, interleaved
(every image through every way in each round, the order of the ways rotated
per round), and prints medians over the rounds:

- naive: Pillow, full decode, ``exif_transpose``, ImageCms conversion to
  sRGB when the profile is not sRGB, ``thumbnail()`` once per size;
- ours:  galleries.imaging.make_derivatives;
- floor: Pillow's full-size decode once plus the three encodes of images
  already sized (ours, prepared untimed): resize and colour are free.

Time is CPU time of the process (other jobs on a shared machine stretch
wall time, not CPU time); wall-clock ratios are printed too. Then bytes and
PSNR per size of ours against naive, each against an exact reference (full
decode, orientation, lcms conversion to sRGB, Lanczos to the output's size).
``--procs N`` runs the whole set in 1 and in N processes, each pinned to its
own core with libvips one thread, and prints images/s and the ratio.
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ["VIPS_CONCURRENCY"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyvips  # noqa: E402
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat  # noqa: E402

from galleries import colour, imaging  # noqa: E402

CACHE = Path(__file__).resolve().parent.parent / "var" / "bench" / "derivatives"
QUALITY = 82
MAX_PIXELS = 100_000_000
TARGET_NAIVE, TARGET_FLOOR, TARGET_BYTES, TARGET_PROCS = 1.9, 1.15, 1.02, 1.85
RD_QUALITIES = (QUALITY - 12, QUALITY - 6, QUALITY, QUALITY + 6)

Way = Callable[[str, int], list[bytes]]  # (path, method) -> WebP per size


@dataclass(frozen=True)
class Kind:
    name: str
    size: tuple[int, int]
    orientations: tuple[int, ...]
    profile: str  # srgb, p3, adobe
    progressive: bool = False


KINDS = (
    Kind("srgb-24mp-o1/6", (6000, 4000), (1, 6), "srgb"),
    Kind("srgb-24mp-o3/8", (6000, 4000), (3, 8), "srgb"),
    Kind("p3-24mp", (6000, 4000), (1, 6), "p3"),
    Kind("adobergb-24mp", (6000, 4000), (1, 8), "adobe"),
    Kind("progressive-24mp", (6000, 4000), (1, 6), "srgb", progressive=True),
    Kind("srgb-45mp", (8256, 5504), (1, 6), "srgb"),
)


def _profile(name: str) -> bytes:
    if name == "adobe":
        return colour.adobe_rgb_profile()
    # libvips' built-in profiles: the sRGB and P3 that cameras and phones embed.
    pixel = (pyvips.Image.black(1, 1, bands=3) + 128).cast("uchar").copy(interpretation="srgb")
    return pixel.icc_transform(name, input_profile="srgb", embedded=False).get("icc-profile-data")


def images(per_kind: int) -> dict[str, list[Path]]:
    from galleries.demo_images import photo

    CACHE.mkdir(parents=True, exist_ok=True)
    paths: dict[str, list[Path]] = {}
    for k, kind in enumerate(KINDS):
        paths[kind.name] = []
        for i in range(per_kind):
            orientation = kind.orientations[i % len(kind.orientations)]
            slug = kind.name.replace("/", "")
            path = CACHE / f"{slug}-{i}-o{orientation}.jpg"
            if not path.exists():
                print(f"  generating {path.name} ...", flush=True)
                exif = Image.Exif()
                exif[0x0112] = orientation
                photo(*kind.size, seed=10 * k + i).save(
                    path,
                    "JPEG",
                    quality=92,
                    icc_profile=_profile(kind.profile),
                    exif=exif.tobytes(),
                    progressive=kind.progressive,
                )
            paths[kind.name].append(path)
    return paths


@dataclass
class Run:
    cpu_ms: float
    wall_ms: float
    out: list[bytes]


def timed(way: Way, path: str, method: int) -> Run:
    cpu, wall = time.process_time(), time.perf_counter()
    out = way(path, method)
    return Run((time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000, out)


def to_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """What a careful Pillow user does: convert unless the profile says sRGB."""
    if not profile:
        return image
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    if "srgb" in ImageCms.getProfileDescription(source).lower():
        return image
    return ImageCms.profileToProfile(
        image, source, ImageCms.createProfile("sRGB"), renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
    )


def upright_srgb(path: str) -> Image.Image:
    with Image.open(path) as opened:
        profile = opened.info.get("icc_profile")
        image = ImageOps.exif_transpose(opened)  # decodes the full frame
    if image.mode != "RGB":  # convert() of an RGB image would only copy it
        image = image.convert("RGB")
    return to_srgb(image, profile)


def naive(path: str, method: int) -> list[bytes]:
    image = upright_srgb(path)
    sizes = []
    for _, edge in imaging.SIZES:
        copy = image.copy()
        copy.thumbnail((edge, edge))
        sizes.append(imaging.encode_webp(copy, quality=QUALITY, method=method))
    return sizes


def ours(path: str, method: int) -> list[bytes]:
    _, derivatives = imaging.make_derivatives(
        path, filename=Path(path).name, max_pixels=MAX_PIXELS, quality=QUALITY, method=method
    )
    return [d.data for d in derivatives]


_floor_inputs: dict[str, list[Image.Image]] = {}


def prepare_floor(path: str) -> None:
    info = imaging.probe(path, filename=Path(path).name, max_pixels=MAX_PIXELS)
    steps = imaging._derive(path, info, "truncated")
    _floor_inputs[path] = [imaging._to_pillow(image, data).copy() for _, image, data in steps]


def floor(path: str, method: int) -> list[bytes]:
    """Decode once at full size, then encode the three sizes ours encodes,
    resized and converted before the clock started."""
    with Image.open(path) as opened:
        opened.load()
    return [imaging.encode_webp(img, quality=QUALITY, method=method) for img in _floor_inputs[path]]


class Reference:
    """The exact picture at any size: full decode, orientation, lcms to
    sRGB, Lanczos; each size made once."""

    def __init__(self, path: str) -> None:
        self.full = upright_srgb(path)
        self.sized: dict[tuple[int, int], Image.Image] = {}

    def psnr(self, webp: bytes) -> float:
        with Image.open(io.BytesIO(webp)) as decoded:
            image = decoded.convert("RGB")
        if image.size not in self.sized:
            self.sized[image.size] = self.full.resize(image.size, Image.Resampling.LANCZOS)
        rms = ImageStat.Stat(ImageChops.difference(image, self.sized[image.size])).rms
        mse = sum(r * r for r in rms) / len(rms)
        return 99.0 if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))

    def bytes_at(self, image: Image.Image, db: float, method: int) -> float:
        """Bytes WebP needs for ``image`` to score ``db``: encoded at four
        qualities around ours, log(bytes) interpolated linearly in PSNR."""
        points = sorted(
            (self.psnr(data), math.log(len(data)))
            for data in (imaging.encode_webp(image, quality=q, method=method) for q in RD_QUALITIES)
        )
        for (db0, log0), (db1, log1) in zip(points, points[1:], strict=False):
            if db <= db1 or (db1, log1) == points[-1]:  # the last segment extrapolates
                return math.exp(log0 + (log1 - log0) * (db - db0) / (db1 - db0))
        raise AssertionError("unreachable")


WAYS: dict[str, Way] = {"naive": naive, "ours": ours, "floor": floor}


def interleaved(paths: list[Path], rounds: int, method: int) -> dict[tuple[str, str], list[Run]]:
    runs: dict[tuple[str, str], list[Run]] = {}
    names = list(WAYS)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for path in paths:
            for name in order:
                runs.setdefault((name, str(path)), []).append(timed(WAYS[name], str(path), method))
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return runs


def report(kinds: dict[str, list[Path]], runs: dict[tuple[str, str], list[Run]]) -> bool:
    def per_image(way: str, paths: list[Path], attr: str) -> float:
        return statistics.mean(statistics.median(getattr(run, attr) for run in runs[way, str(p)]) for p in paths)

    header = (
        f"{'class':18} {'naive':>6} {'ours':>5} {'floor':>5}  {'x naive':>7} {'/ floor':>7}"
        f"  {'wall: x naive':>13} {'/ floor':>7}   KB ours/naive  (large medium thumb)"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for name, paths in kinds.items():
        cpu = {way: per_image(way, paths, "cpu_ms") for way in WAYS}
        wall = {way: per_image(way, paths, "wall_ms") for way in WAYS}
        to_naive, to_floor = cpu["naive"] / cpu["ours"], cpu["ours"] / cpu["floor"]
        ok &= to_naive >= TARGET_NAIVE and to_floor <= TARGET_FLOOR
        kb = [
            "{:.0f}/{:.0f}".format(
                *(statistics.mean(len(runs[way, str(p)][-1].out[i]) for p in paths) / 1024 for way in ("ours", "naive"))
            )
            for i in range(len(imaging.SIZES))
        ]
        print(
            f"{name:18} {cpu['naive']:6.0f} {cpu['ours']:5.0f} {cpu['floor']:5.0f}  {to_naive:7.2f} {to_floor:7.2f}"
            f"  {wall['naive'] / wall['ours']:13.2f} {wall['ours'] / wall['floor']:7.2f}   {'  '.join(kb)}"
        )
    print(f"(ms/image, CPU time; targets: x naive >= {TARGET_NAIVE}, / floor <= {TARGET_FLOOR})")
    return ok


def quality(kinds: dict[str, list[Path]], runs: dict[tuple[str, str], list[Run]], method: int) -> bool:
    print("\nper size, ours against naive: bytes at q82; PSNR (dB, against the exact reference);")
    print("and the bytes ours needs to reach naive's PSNR (interpolated over q70-88), which the target is on:")
    header = f"{'class':18} " + "  ".join(f"{n + ': bytes':>14} {'PSNR':>11} {'@PSNR':>6}" for n, _ in imaging.SIZES)
    print(header)
    print("-" * len(header))
    ok = True
    for name, paths in kinds.items():
        cells: list[list[tuple[float, float, float, float]]] = [[] for _ in imaging.SIZES]
        for path in paths:
            reference = Reference(str(path))
            mine, theirs = runs["ours", str(path)][-1].out, runs["naive", str(path)][-1].out
            for i in range(len(imaging.SIZES)):
                db_naive = reference.psnr(theirs[i])
                at_equal = reference.bytes_at(_floor_inputs[str(path)][i], db_naive, method)
                size_ratio = len(mine[i]) / len(theirs[i])
                cells[i].append((size_ratio, reference.psnr(mine[i]), db_naive, at_equal / len(theirs[i])))
        row = []
        for i in range(len(imaging.SIZES)):
            ratio, db_ours, db_naive, equal = (statistics.mean(c[j] for c in cells[i]) for j in range(4))
            ok &= equal <= TARGET_BYTES
            row.append(f"{ratio:13.3f}x {db_ours:5.2f}/{db_naive:5.2f} {equal:5.3f}x")
        print(f"{name:18} " + "  ".join(row))
    print(f"(target: bytes at naive's PSNR <= {TARGET_BYTES}x naive's, every size)")
    return ok


def _worker(core: int, paths: list[str], method: int, barrier, results) -> None:
    os.sched_setaffinity(0, {core})
    ours(paths[0], method)  # imports, profile checks: warm before the clock
    barrier.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        ours(path, method)
    results.put((time.perf_counter() - wall, time.process_time() - cpu))


def processes(paths: list[Path], count: int, rounds: int, method: int) -> bool:
    """Images/s of 1 and of ``count`` worker processes, each pinned to its
    own core, libvips one thread each; interleaved rounds, medians."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < count:
        print(f"\n--procs {count}: only {len(cores)} cores available, skipped")
        return True
    context = multiprocessing.get_context("spawn")  # never fork an initialised libvips
    rates: dict[int, list[float]] = {1: [], count: []}
    cpu_ms: dict[int, list[float]] = {1: [], count: []}
    shares: dict[int, list[float]] = {1: [], count: []}
    load = os.getloadavg()[0]
    for _ in range(rounds):
        for n in (1, count):
            barrier, results = context.Barrier(n), context.Queue()
            workers = [
                context.Process(target=_worker, args=(cores[i], [str(p) for p in paths], method, barrier, results))
                for i in range(n)
            ]
            for worker in workers:
                worker.start()
            times = [results.get() for _ in workers]
            for worker in workers:
                worker.join()
            rates[n].append(n * len(paths) / max(wall for wall, _ in times))
            cpu_ms[n].append(1000 * sum(cpu for _, cpu in times) / (n * len(paths)))
            shares[n].append(statistics.mean(cpu / wall for wall, cpu in times))
    print(f"\nworker processes (one core and one libvips thread each), {len(paths)} images each, {rounds} rounds:")
    for n in (1, count):
        print(
            f"  {n} process{'es' if n > 1 else '  '} {statistics.median(rates[n]):6.2f} images/s"
            f"   CPU {statistics.median(cpu_ms[n]):5.0f} ms/image"
            f"   each got {statistics.median(shares[n]):4.0%} of its core"
        )
    wall_ratio = statistics.median(rates[count]) / statistics.median(rates[1])
    cpu_ratio = statistics.median(cpu_ms[1]) / statistics.median(cpu_ms[count])
    print(f"  images/s, {count} processes / 1: {wall_ratio:.2f}x   (target >= {TARGET_PROCS})")
    print(
        f"  CPU per image, 1 / {count}: {cpu_ratio:.2f} (1.00: running side by side costs nothing; "
        f"{count} x this is the speed-up on idle cores); load average {load:.1f} at the start"
    )
    return wall_ratio >= TARGET_PROCS


def sweep(paths: list[Path]) -> None:
    print("\nencoder effort (DERIVATIVE_WEBP_METHOD), our pipeline, one round, CPU ms:")
    print(f"{'method':>6} {'ms/image':>9} {'KB total':>9} {'bytes vs m4':>11}")
    results = {}
    for method in (0, 2, 4, 6):
        runs = [timed(ours, str(p), method) for p in paths]
        results[method] = (statistics.mean(r.cpu_ms for r in runs), sum(len(b) for r in runs for b in r.out) / 1024)
    for method, (ms, kb) in results.items():
        print(f"{method:6} {ms:9.0f} {kb:9.0f} {kb / results[4][1]:10.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=2, help="images per class (orientations alternate)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--method", type=int, default=4, help="WebP method (effort) for the comparison")
    parser.add_argument("--quick", action="store_true", help="1 image per class, 1 round, no sweep")
    parser.add_argument("--procs", type=int, default=0, help="also compare 1 and N worker processes")
    parser.add_argument("--sweep", action="store_true", help="also sweep the encoder effort")
    parser.add_argument("--no-sweep", action="store_true", help=argparse.SUPPRESS)  # the former default
    args = parser.parse_args()
    if args.quick:
        args.per_class, args.rounds = 1, 1

    kinds = images(args.per_class)
    paths = [p for group in kinds.values() for p in group]
    procs_ok = processes(paths, args.procs, args.rounds, args.method) if args.procs > 1 else True
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(
        f"\n{len(paths)} images in {len(kinds)} classes, {args.rounds} interleaved rounds, one core, "
        f"WebP q{QUALITY} method {args.method}; pyvips {pyvips.__version__} / libvips "
        f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, Pillow {Image.__version__}"
    )
    for path in paths:
        prepare_floor(str(path))
        ours(str(path), args.method)  # warm: imports, the profile check per distinct profile
    runs = interleaved(paths, args.rounds, args.method)
    print()
    speed_ok = report(kinds, runs)
    bytes_ok = quality(kinds, runs, args.method)
    if args.sweep:
        sweep(kinds[KINDS[0].name])
    print(f"\ntargets: speed {'ok' if speed_ok else 'MISSED'}, bytes {'ok' if bytes_ok else 'MISSED'}", end="")
    print(f", processes {'ok' if procs_ok else 'MISSED'}" if args.procs > 1 else "")


if __name__ == "__main__":
    main()
