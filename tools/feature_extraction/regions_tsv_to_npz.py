# Copyright (c) mmext contributors. All rights reserved.
"""Convert BUTD region TSVs (the released COCO / CC features of
bottom-up-attention ``tools/generate_tsv.py``, or ``extract_regions.py
--format tsv``) to one ``<image id>.npz`` per image.

Resumable (existing ``.npz`` files are skipped), rows read with a bounded
length; rows that cannot be converted (damaged, too long, an id that
cannot be a file name, a repeated id, ids equal ignoring case) are listed
with the reason in ``<out>/refused_rows.tsv``. ``LoadRegionFeatures`` reads
the TSVs directly too (``feature_file=``); convert when you want per-image
files. The logic is :func:`mmext.datasets.region_features.tsv_to_npz`.

Example::

    python tools/feature_extraction/regions_tsv_to_npz.py \\
        'data/coco/trainval_36/*.tsv' --out data/coco/regions_36
"""
import argparse
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('tsv', nargs='+', help='TSV files or globs (quoted)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument(
        '--max-line-mib',
        type=float,
        default=8,
        help='longest row read, MiB (default 8: ~700 boxes of 2048-d)')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def _progress_printer():
    last = [0.0]

    def show(done, total):
        now = time.monotonic()
        if now - last[0] >= 1 or done == total:
            last[0] = now
            pct = 100 * done / max(total, 1)
            print(
                f'\r{done / 2**20:.0f} / {total / 2**20:.0f} MiB '
                f'({pct:.0f}%)',
                end='',
                file=sys.stderr,
                flush=True)

    return show


def main(argv=None):
    from mmext.datasets.region_features import RegionFileError, tsv_to_npz
    from mmext.dedup.textio import escape_path
    from mmext.utils.fileio import InputFileError
    args = parse_args(argv)
    try:
        summary = tsv_to_npz(
            args.tsv,
            args.out,
            max_line_bytes=int(args.max_line_mib * 2**20),
            progress=None if args.no_progress else _progress_printer())
    except (OSError, RegionFileError, InputFileError) as e:
        print(f'regions_tsv_to_npz: {e}', file=sys.stderr)
        return 1
    refused = summary['refused']
    if not args.no_progress:
        print(file=sys.stderr)
    print(f"{summary['converted']} converted, {summary['skipped']} already "
          f'done, {len(refused)} refused (listed in '
          f'{escape_path(args.out)}/refused_rows.tsv)')
    for path, line, image_id, reason in refused[:5]:
        print(f'  {escape_path(path)} line {line} '
              f'({escape_path(image_id)!r}): {reason}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
