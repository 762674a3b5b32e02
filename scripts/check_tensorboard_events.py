#!/usr/bin/env python3
"""Reads TensorBoard event files written by orpo-train (src/tensorboard.rs) with the real
`tensorboard` package, the loader behind `tensorboard --logdir`.

Two uses:

  # The fixture: read the event file the Rust writer produced and write the scalars the
  # package returned (tag -> [[step, value, wall_time], ...]) next to it; the Rust test
  # crates/orpo-train/tests/tensorboard.rs checks the writer still produces that file and that
  # its own reader returns exactly these scalars.
  python scripts/check_tensorboard_events.py \
      tests/fixtures/tensorboard/events.out.tfevents.1700000000.orpo-fixture.1.0 \
      --write tests/fixtures/tensorboard/tensorboard_scalars.json --against-torch

  # A run: load OUTPUT_DIR as `tensorboard --logdir OUTPUT_DIR` does (every run directory
  # under it) and assert that each given tag has a scalar at every step metrics.jsonl logged
  # it, with the same value (to f32 precision).
  python scripts/check_tensorboard_events.py --logdir runs/x --metrics runs/x/metrics.jsonl
"""

import argparse
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator, event_multiplexer


def scalars_of(accumulator):
    out = {}
    for tag in sorted(accumulator.Tags()["scalars"]):
        out[tag] = [[e.step, e.value, e.wall_time] for e in accumulator.Scalars(tag)]
    return out


def rewrite(name):
    # transformers' rewrite_logs
    if name.startswith("eval_"):
        return "eval/" + name[len("eval_"):]
    if name.startswith("test_"):
        return "test/" + name[len("test_"):]
    return "train/" + name


def check_run(logdir, metrics_path):
    multiplexer = event_multiplexer.EventMultiplexer(
        size_guidance={event_accumulator.SCALARS: 0}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    runs = multiplexer.Runs()
    if not runs:
        sys.exit(f"no TensorBoard run under {logdir}")
    found = {}
    for run in runs:
        acc = multiplexer.GetAccumulator(run)
        for tag, rows in scalars_of(acc).items():
            found.setdefault(tag, []).extend(rows)
    checked = 0
    with open(metrics_path) as f:
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            step = entry.pop("step")
            epoch = entry.pop("epoch")
            entry["epoch"] = epoch
            for name, value in entry.items():
                tag = rewrite(name)
                rows = [r for r in found.get(tag, []) if r[0] == step]
                if not rows:
                    sys.exit(f"{tag} has no scalar at step {step} (runs: {list(runs)})")
                got = rows[-1][1]
                if not math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-12):
                    sys.exit(f"{tag} at step {step}: {got} != {value}")
                checked += 1
    print(f"{logdir}: {len(runs)} run(s), {len(found)} tags, {checked} logged values match")


def records(data):
    out, at = [], 0
    while at < len(data):
        (n,) = struct.unpack("<Q", data[at : at + 8])
        out.append(data[at : at + 16 + n])
        at += 16 + n
    return out


def against_torch(event_file, scalars):
    """Writes the same scalars with PyTorch's SummaryWriter (what transformers'
    TensorBoardCallback uses) and checks each of its records is byte for byte one of ours."""
    import tempfile

    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory() as d:
        writer = SummaryWriter(log_dir=d)
        for tag, rows in scalars.items():
            for step, value, wall_time in rows:
                writer.add_scalar(tag, value, step, walltime=wall_time)
        writer.close()
        (theirs,) = [os.path.join(d, f) for f in os.listdir(d)]
        with open(theirs, "rb") as f:
            torch_records = records(f.read())[1:]
    with open(event_file, "rb") as f:
        ours = set(records(f.read()))
    missing = [r for r in torch_records if r not in ours]
    if missing:
        sys.exit(f"{len(missing)} of PyTorch's {len(torch_records)} records are not in ours")
    print(f"PyTorch's SummaryWriter writes the same {len(torch_records)} scalar records")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event_file", nargs="?")
    parser.add_argument("--write", help="write the scalars read as JSON here")
    parser.add_argument("--logdir", help="a run's output_dir (as tensorboard --logdir)")
    parser.add_argument("--metrics", help="the run's metrics.jsonl to compare with")
    parser.add_argument(
        "--against-torch",
        action="store_true",
        help="also write the scalars with torch's SummaryWriter and compare the records",
    )
    args = parser.parse_args()
    if args.logdir:
        check_run(args.logdir, args.metrics or os.path.join(args.logdir, "metrics.jsonl"))
        return
    acc = event_accumulator.EventAccumulator(
        args.event_file, size_guidance={event_accumulator.SCALARS: 0}
    )
    acc.Reload()
    scalars = scalars_of(acc)
    if not scalars:
        sys.exit(f"{args.event_file}: no scalars")
    # The file_version record is read as the file's version.
    assert acc.file_version == 2.0, acc.file_version
    for tag, rows in scalars.items():
        print(f"{tag}: {rows}")
    if args.against_torch:
        against_torch(args.event_file, scalars)
    if args.write:
        with open(args.write, "w") as f:
            json.dump(scalars, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
