"""A stand-in for `flepimop batch-calibrate`, so the example config runs without flepiMoP.

Checks that the resume files are there (at least one file under each of --require's
directories below --resume-dir), then writes flepiMoP-shaped outputs
<outputs>/<setup>/<run>/<ftype>/global/{final,intermediate}/... and a manifest.

    python workflow/scripts/example_calibrate.py --outputs DIR --run RUN [--resume-dir DIR]
        [--setup USA_inference] [--require hnpi,snpi,seed] [--manifest manifest.json] [--slots 2]
"""

import argparse
import json
import sys
from pathlib import Path

FTYPES = {"seed": "csv", "init": "parquet", "snpi": "parquet", "hnpi": "parquet", "spar": "parquet",
          "hpar": "parquet", "llik": "parquet", "seir": "parquet", "hosp": "parquet"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--resume-dir")
    ap.add_argument("--setup", default="USA_inference")
    ap.add_argument("--require", default="hnpi,snpi,seed")
    ap.add_argument("--manifest")
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args(argv)
    if args.resume_dir:
        root = Path(args.resume_dir)
        for ftype in filter(None, args.require.split(",")):
            found = [p for p in root.rglob("*") if p.is_file() and ftype in p.relative_to(root).parts]
            if not found:
                print(f"example_calibrate: no {ftype} resume files under {root}", file=sys.stderr)
                return 3
            print(f"resume: {len(found)} {ftype} file(s)")
    base = Path(args.outputs) / args.setup / args.run
    written = []
    for ftype, ext in FTYPES.items():
        for stage in ("final", "intermediate"):
            for slot in range(1, args.slots + 1):
                name = (f"{slot:09d}.{args.run}.{ftype}.{ext}" if stage == "final"
                        else f"{slot:09d}.000000001.000000001.{args.run}.{ftype}.{ext}")
                path = base / ftype / "global" / stage / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{ftype},{stage},{slot},{args.run}\n")
                written.append(str(path))
    if args.manifest:
        Path(args.manifest).parent.mkdir(parents=True, exist_ok=True)
        Path(args.manifest).write_text(json.dumps({"run": args.run, "setup": args.setup,
                                                   "files": len(written)}, indent=2) + "\n")
    print(f"wrote {len(written)} output file(s) under {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
