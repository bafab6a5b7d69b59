"""How long an upload's image processing takes (engine/media: check, re-encode, WebP widths),
to decide whether it may run in the upload request.

A 12-megapixel JPEG (4000×3000, a camera's photo) in two kinds: a smooth one, like most
photos, and noise, the worst case for encoders. Baseline in the same run: Pillow decoding the
file and encoding it once as a JPEG, the least any re-encoding implementation must do.
CPU time is printed beside wall time: on a shared machine wall time is mostly other processes.

    python -m bench.media_processing [--out media.json]
"""
from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable

from PIL import Image, ImageFilter

from engine.media import checks, processing

RUNS = 3


def photos() -> dict[str, bytes]:
    noise = Image.effect_noise((4000, 3000), 60).convert("RGB")
    made = {}
    for label, image in (("smooth", noise.filter(ImageFilter.GaussianBlur(4))),
                         ("noise", noise)):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        made[label] = out.getvalue()
    return made


def timed(work: Callable[[], object]) -> dict[str, float]:
    best_cpu = best_wall = float("inf")
    for _ in range(RUNS):
        cpu, wall = time.process_time(), time.perf_counter()
        work()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {"cpu_s": round(best_cpu, 3), "wall_s": round(best_wall, 3)}


def baseline(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    image.load()
    image.save(io.BytesIO(), "JPEG", quality=85)


def engine(data: bytes) -> None:
    _sniffed, image = checks.sniff(data, 40_000_000)
    assert image is not None
    processing.process(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    results = {}
    for label, data in photos().items():
        ours, floor = timed(lambda d=data: engine(d)), timed(lambda d=data: baseline(d))
        results[label] = {"bytes": len(data), "engine": ours, "baseline": floor,
                          "cpu_ratio": round(ours["cpu_s"] / floor["cpu_s"], 2)}
        print(f"{label:>6}: {len(data) / 1e6:.1f} MB  engine {ours['cpu_s']:.2f} s CPU "
              f"({ours['wall_s']:.2f} s wall)  baseline {floor['cpu_s']:.2f} s CPU  "
              f"× {results[label]['cpu_ratio']}")
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
