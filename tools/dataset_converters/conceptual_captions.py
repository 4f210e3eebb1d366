# Copyright (c) mmext contributors. All rights reserved.
"""Download the images of Conceptual Captions (data/conceptual_captions).

  python tools/dataset_converters/conceptual_captions.py download \\
      data/conceptual_captions/Validation_GCC-1.1.0-Validation.tsv
  python tools/dataset_converters/conceptual_captions.py summary \\
      data/conceptual_captions/Validation_GCC-1.1.0-Validation.tsv

``download`` fetches every URL of the TSV (``caption<TAB>url``) with
threads, resizes the image to 224 x 224 (LANCZOS), saves it as
``images/<sha1 of the URL>.jpg`` (JPEG q95) next to the TSV (or in
``--out``) and records each URL's fate (saved, http_error, timeout,
not_image, network_error, invalid_url) in ``<tsv stem>.downloads.csv``.
Run it again to resume: saved images and final failures (HTTP 4xx, not an
image) are skipped, timeouts and network errors retried
(``--retry-failed`` retries everything). The ViLBERT thesis settings were
``--timeout 0.3 --workers 80 --retries 0``. ``summary`` counts the TSV's
lines per status.
"""
import argparse
import json
import os.path as osp
import sys

from mmext.datasets.conceptual_captions import (download_conceptual_captions,
                                                summarize_download)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('download', 'summary'):
        p = sub.add_parser(name)
        p.add_argument(
            'tsv',
            help='Conceptual Captions TSV (caption<TAB>'
            'url per line)')
        p.add_argument('--out', help='output folder (default: the TSV\'s)')
    p = sub.choices['download']
    p.add_argument('--workers', type=int, default=32, help='threads')
    p.add_argument(
        '--timeout',
        type=float,
        default=5.0,
        help='seconds per attempt, connect + transfer')
    p.add_argument(
        '--retries',
        type=int,
        default=2,
        help='extra attempts after a timeout / 5xx')
    p.add_argument(
        '--backoff',
        type=float,
        default=1.0,
        help='seconds before the first retry (doubles)')
    p.add_argument('--size', type=int, default=224, help='output side')
    p.add_argument('--limit', type=int, help='first N lines only')
    p.add_argument(
        '--retry-failed',
        action='store_true',
        help='also retry HTTP 4xx and undecodable images')
    p.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or osp.dirname(osp.abspath(args.tsv))
    if args.command == 'summary':
        print(json.dumps(summarize_download(args.tsv, out), indent=1))
        return 0
    counts, log = download_conceptual_captions(
        args.tsv,
        out,
        limit=args.limit,
        workers=args.workers,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        size=args.size,
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff)
    print(f'{counts["saved"]} images in {osp.join(out, "images")}; per '
          f'status: {json.dumps(counts)}; log: {log}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
